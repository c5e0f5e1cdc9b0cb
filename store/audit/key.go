package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// EventKey is the row that switches the chain to keyed hashes: from it on
// (itself included) every row's hash is HMAC-SHA-256 under the data dir's
// audit key, named by its key id in the row's arguments. The rows before it
// keep their plain SHA-256 hashes, and the key row chains to the last of
// them, so a log written before keys existed keeps verifying.
const EventKey = "audit/key"

// KeySize is the length of an audit key: 256 bits.
const KeySize = 32

// Chain kinds, as VerifyResult.Chain names them.
const (
	ChainSHA256 = "sha256"
	ChainHMAC   = "hmac-sha256"
)

// ErrKeyMismatch is wrapped by Open's error when the log is keyed and the
// key it was given is not the one of its newest key row, or it was given
// no key.
var ErrKeyMismatch = errors.New("audit key mismatch")

// KeyID names key without revealing it: the first 8 bytes of
// HMAC-SHA-256(key, "idmcp audit key id"), in hex.
func KeyID(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("idmcp audit key id"))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// keyArgs is the arguments column of an audit/key row.
type keyArgs struct {
	Chain         string `json:"chain"`
	KeyID         string `json:"key_id"`
	PreviousKeyID string `json:"previous_key_id,omitempty"`
}

// keyRowID returns the key id an audit/key row names ("?" when its
// arguments do not parse: such a row cannot be checked under any key).
func keyRowID(r *Row) string {
	var a keyArgs
	if json.Unmarshal([]byte(r.Arguments), &a) != nil || a.KeyID == "" {
		return "?"
	}
	return a.KeyID
}

// chain checks rows one after another, hashing each the way it was written:
// SHA-256 before the first audit/key row, HMAC-SHA-256 under the key of the
// newest audit/key row after it. Without a key, keyed rows can only be
// checked for their links (ids and prev_hash), not their contents.
type chain struct {
	key    []byte
	keyID  string
	h      hasher // keyed, when key is set
	segKey string // key id of the keyed segment the walk is in; "" before any key row
	// KeyedFrom is the first row of the current keyed segment.
	keyedFrom int64
	// linksOnly counts keyed rows whose contents could not be checked (no key).
	linksOnly int64
}

func newChain(key []byte) *chain {
	c := &chain{key: key}
	if key != nil {
		c.keyID = KeyID(key)
		c.h.mac = hmac.New(sha256.New, key)
	}
	return c
}

// check checks row against its own hash and against the row before it
// (prevID, prevHash), and names the damage; "" when the row is sound. It
// then moves the walk past row.
func (c *chain) check(row *Row, prevID int64, prevHash string) (Damage, string) {
	kid := c.segKey
	if row.Event == EventKey {
		kid = keyRowID(row)
	}
	var selfOK bool
	switch {
	case kid == "":
		selfOK = ComputeHash(row) == row.Hash
	case c.key == nil:
		selfOK = true // cannot tell: links only
		c.linksOnly++
	case kid != c.keyID:
		return DamageKey, fmt.Sprintf("hashed under audit key %s, not this data dir's key %s (rows rewritten under another key, or the key was replaced)", kid, c.keyID)
	default:
		selfOK = hmac.Equal([]byte(c.h.sum(row, row.canonMiddle())), []byte(row.Hash))
	}
	linked := row.PrevHash == prevHash
	switch {
	case !selfOK && linked:
		return DamageContents, "contents do not match its hash (row edited, or forged with a made-up hash)"
	case !selfOK:
		return DamageMoved, fmt.Sprintf("matches neither its own hash nor row %d's (row moved, swapped, or renumbered around a forged row)", prevID)
	case row.ID != prevID+1:
		return DamageDeleted, fmt.Sprintf("follows row %d: %d row(s) missing (deleted)", prevID, row.ID-prevID-1)
	case !linked:
		return DamageInserted, fmt.Sprintf("prev_hash does not match row %d's hash (row %d was inserted or replaced, or this row was forged)", prevID, prevID)
	}
	if row.Event == EventKey {
		c.segKey, c.keyedFrom = kid, row.ID
	}
	return "", ""
}

// kind describes the chain walked so far.
func (c *chain) kind() string {
	switch {
	case c.segKey == "":
		return ChainSHA256
	case c.keyedFrom > 1:
		return fmt.Sprintf("%s (key %s) from row %d, %s before it", ChainHMAC, c.segKey, c.keyedFrom, ChainSHA256)
	}
	return fmt.Sprintf("%s (key %s)", ChainHMAC, c.segKey)
}
