-- Signed-in staff: the browser holds only the session id (a cookie); the tokens stay here, so sessions
-- survive a restart of the desk and any replica serves any session. The id is stored hashed.
CREATE TABLE desk_sessions (
    id_hash        text PRIMARY KEY,
    subject        text NOT NULL,
    display_name   text NOT NULL,
    roles          jsonb NOT NULL,
    -- the bearer token and the ID token, sealed (AES-GCM) with DESK_SESSION_KEY, the id hash bound in
    sealed_tokens  text NOT NULL,
    token_expires_at timestamptz NOT NULL,
    csrf_token     text NOT NULL,
    lang           text NOT NULL DEFAULT 'ja',
    flash          jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX desk_sessions_last_seen ON desk_sessions (last_seen_at);

-- A sign-in under way at the identity provider: state, nonce and the PKCE verifier, until the callback.
CREATE TABLE desk_sign_ins (
    state          text PRIMARY KEY,
    nonce          text NOT NULL,
    code_verifier  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
