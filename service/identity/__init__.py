"""Identity beyond the password: second factors (TOTP and recovery codes), the password policy,
account lockout and session bookkeeping (R-SEC-1, R-SEC-2, R-SEC-6; OWASP ASVS 4 L2 V2/V3)."""
