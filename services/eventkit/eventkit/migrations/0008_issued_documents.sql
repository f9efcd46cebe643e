-- The printed documents' SHA-256 (eventkit.documents): the same document printed again has the same digest,
-- so a reprint can be checked against the first print. Ids and digests only, no personal data.
CREATE TABLE IF NOT EXISTS issued_documents (
    kind             text NOT NULL,
    reference        text NOT NULL,
    sha256           text NOT NULL,
    copies           integer NOT NULL DEFAULT 1,
    first_printed_at timestamptz NOT NULL DEFAULT now(),
    last_printed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, reference, sha256)
);
