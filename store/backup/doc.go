// Package backup writes a store's contents to a portable file and reads
// it back into any store: the format of `caddy gatehouse store export`
// and `import`, and so the way from one backend to another (embedded to
// Redis and back).
//
// # Format (version 1)
//
// JSON lines, optionally gzip-compressed (the reader recognises gzip by
// its magic bytes). The first line is the header:
//
//	{"format":"gatehouse-store-export","version":1,"issuer":"https://auth.example.com","created":"2026-11-26T02:00:00Z"}
//
// then one line per key or set, in no particular order:
//
//	{"key":"user:3f9a…","value":"<base64>","expires":"2026-11-27T02:00:00.123Z"}
//	{"set":"users:index","members":["alice","bob"]}
//
// ("expires" is left out for a key without expiry; a key, set name or
// member that is not valid UTF-8 is written as {"b64":"…"} instead of a
// string), and last the trailer:
//
//	{"end":{"values":120,"sets":8,"members":40,"sha256":"<hex>"}}
//
// whose counts and SHA-256 (of every byte before the trailer line) let
// the reader refuse a truncated or altered file before anything of it
// is written. Expiries are absolute, so a record that expired between
// export and import is not brought back.
//
// Values are copied as they are stored: password hashes, hashed tokens
// and sealed TOTP secrets stay hashed or sealed, but the signing keys,
// the cookie keys and the pairwise salt are in the clear. Whoever holds
// an export can sign tokens as the issuer: keep it like a private key
// (the CLI writes it with mode 0600).
//
// This package imports only store; it knows nothing of Caddy.
package backup
