-- CaseDeclined v2 separates a referral to the general outpatient clinic from the refusal reasons.
ALTER TABLE case_view ADD COLUMN IF NOT EXISTS recommendation text;
