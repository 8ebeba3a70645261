package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// Device authorizations (RFC 8628) in the token repository: a record
// under the hash of its device code (the device's bearer secret), and
// the user code (normalised) pointing at it while it waits.
const (
	keyDevice   = "dev:"
	keyUserCode = "dev-uc:"
	// keyDeviceRate counts device authorization requests per address.
	keyDeviceRate = "dev-rate:"
	// deviceRecordGrace keeps a record after its code expired, so that a
	// late poll is told expired_token and a replay is still recognised.
	deviceRecordGrace = 10 * time.Minute
)

// Device record states.
const (
	devicePending  = "pending"
	deviceApproved = "approved"
	deviceDenied   = "denied"
	deviceRedeemed = "redeemed"
)

// deviceRecord is one device authorization. Its grant holds the client
// and scopes from the start; the person's part (subject, session, acr,
// amr, levels, auth_time) is filled in when they allow the device.
type deviceRecord struct {
	grant
	UserCode string    `json:"user_code"`
	Status   string    `json:"status"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	// Interval is the least number of seconds between two polls; each
	// slow_down adds 5 (RFC 8628 §3.5). LastPoll is the last poll.
	Interval int64     `json:"interval"`
	LastPoll time.Time `json:"last_poll,omitzero"`
	// Offline: offline_access was asked for (and so shown on the page
	// the person allowed); the refresh family outlives the session.
	Offline bool `json:"offline,omitempty"`
	// AccessTokens and Family are the store keys of what was issued for
	// the code, so that a replay can revoke them.
	AccessTokens []string `json:"access_tokens,omitempty"`
	Family       string   `json:"family,omitempty"`
}

// Why a device code or user code did not give tokens or a page.
var (
	errDeviceUnknown  = errors.New("device code invalid or expired")
	errDeviceClient   = errors.New("device code issued to another client")
	errDeviceExpired  = errors.New("device code expired")
	errDevicePending  = errors.New("authorization pending")
	errDeviceSlowDown = errors.New("polling faster than the interval")
	errDeviceDenied   = errors.New("the person denied the device")
	errDeviceRedeemed = errors.New("device code already redeemed")
	// errUserCodeGone: no pending authorization has this user code (never
	// issued, expired, or already allowed or denied).
	errUserCodeGone = errors.New("user code invalid, expired or already used")
	errUnchanged    = errors.New("unchanged")
)

// newDevice stores rec as a pending authorization for ttl and returns
// its device code and (normalised) user code. A user code drawn while
// another live authorization has it is drawn again.
func (t *tokens) newDevice(ctx context.Context, rec *deviceRecord, ttl time.Duration) (string, string, error) {
	now := t.now()
	rec.Status, rec.Created, rec.Expires = devicePending, now, now.Add(ttl)
	for range 4 {
		code, uc := randomToken(), newUserCode()
		rec.UserCode = uc
		key := hashKey(keyDevice, code)
		b, _ := json.Marshal(rec)
		err := t.st.Apply(ctx, store.Create(key, b, ttl+deviceRecordGrace), store.Create(keyUserCode+uc, []byte(key), ttl))
		if errors.Is(err, store.ErrExists) {
			continue
		} else if err != nil {
			return "", "", fmt.Errorf("storing device code: %w", err)
		}
		return code, uc, nil
	}
	return "", "", errors.New("storing device code: no free user code")
}

// device loads the record stored under key.
func (t *tokens) device(ctx context.Context, key string) (*deviceRecord, error) {
	b, err := t.st.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errDeviceUnknown
	} else if err != nil {
		return nil, fmt.Errorf("loading device code: %w", err)
	}
	var r deviceRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding device code: %w", err)
	}
	return &r, nil
}

// deviceByUserCode returns the store key and record of the pending
// authorization with user code uc (normalised).
func (t *tokens) deviceByUserCode(ctx context.Context, uc string) (string, *deviceRecord, error) {
	b, err := t.st.Get(ctx, keyUserCode+uc)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, errUserCodeGone
	} else if err != nil {
		return "", nil, fmt.Errorf("loading user code: %w", err)
	}
	key := string(b)
	r, err := t.device(ctx, key)
	if errors.Is(err, errDeviceUnknown) {
		return "", nil, errUserCodeGone
	} else if err != nil {
		return "", nil, err
	}
	if r.Status != devicePending || r.UserCode != uc || !t.now().Before(r.Expires) {
		return "", nil, errUserCodeGone
	}
	return key, r, nil
}

// updateDevice applies fn to the record under key atomically. fn says
// whether to write the record and what to report; the record keeps the
// lifetime it was created with. It returns the record as fn left it.
func (t *tokens) updateDevice(ctx context.Context, key string, fn func(r *deviceRecord) (write bool, result error)) (*deviceRecord, error) {
	cur, err := t.device(ctx, key)
	if err != nil {
		return nil, err
	}
	ttl := max(cur.Expires.Add(deviceRecordGrace).Sub(t.now()), time.Second)
	var r deviceRecord
	var result error
	err = t.st.Update(ctx, key, ttl, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, errDeviceUnknown
		}
		r = deviceRecord{}
		if err := json.Unmarshal(old, &r); err != nil {
			return nil, fmt.Errorf("decoding device code: %w", err)
		}
		var write bool
		if write, result = fn(&r); !write {
			return nil, errUnchanged
		}
		return json.Marshal(r)
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return nil, err
	}
	return &r, result
}

// decideDevice records the person's answer for the pending
// authorization under key (its user code uc): fn sets the status and,
// when allowed, the grant. The user code is then free again.
func (t *tokens) decideDevice(ctx context.Context, key, uc string, fn func(r *deviceRecord)) (*deviceRecord, error) {
	now := t.now()
	r, err := t.updateDevice(ctx, key, func(r *deviceRecord) (bool, error) {
		if r.Status != devicePending || r.UserCode != uc || !now.Before(r.Expires) {
			return false, errUserCodeGone
		}
		fn(r)
		return true, nil
	})
	if errors.Is(err, errDeviceUnknown) {
		err = errUserCodeGone
	}
	if err != nil {
		return r, err
	}
	// Only while the index still names this record (best effort: a
	// decided record is refused by its status anyway).
	_ = t.st.Apply(ctx, store.Match(keyUserCode+uc, []byte(key)), store.Delete(keyUserCode+uc))
	return r, nil
}

// claimedBy is what every poll checks first: the code is clientID's,
// and not redeemed yet.
func (r *deviceRecord) claimedBy(clientID string) error {
	switch {
	case r.ClientID != clientID:
		return errDeviceClient
	case r.Status == deviceRedeemed:
		return errDeviceRedeemed
	}
	return nil
}

// pollDevice is one poll of the token endpoint by clientID for the
// device code under key (RFC 8628 §3.4, §3.5). It returns the record
// when it is allowed and may be redeemed, else why not. A pending
// record remembers the poll; a poll sooner than the interval after the
// last one (less a fifth, for network jitter) is told slow_down and the
// interval grows by 5 seconds.
func (t *tokens) pollDevice(ctx context.Context, key, clientID string) (*deviceRecord, error) {
	now := t.now()
	return t.updateDevice(ctx, key, func(r *deviceRecord) (bool, error) {
		if err := r.claimedBy(clientID); err != nil {
			return false, err
		}
		switch {
		case !now.Before(r.Expires):
			return false, errDeviceExpired
		case r.Status == deviceDenied:
			return false, errDeviceDenied
		case r.Status == deviceApproved:
			return false, nil
		}
		interval := time.Duration(r.Interval) * time.Second
		early := !r.LastPoll.IsZero() && now.Sub(r.LastPoll) < interval-interval/5
		r.LastPoll = now
		if early {
			r.Interval += 5
			return true, errDeviceSlowDown
		}
		return true, errDevicePending
	})
}

// redeemDevice marks the allowed device code under key used, recording
// what was issued for it (accessKey, familyID), so that a replay can
// revoke it.
func (t *tokens) redeemDevice(ctx context.Context, key, clientID, accessKey, familyID string) (*deviceRecord, error) {
	now := t.now()
	return t.updateDevice(ctx, key, func(r *deviceRecord) (bool, error) {
		if err := r.claimedBy(clientID); err != nil {
			return false, err
		}
		if r.Status != deviceApproved || !now.Before(r.Expires) {
			return false, errDeviceExpired
		}
		r.Status = deviceRedeemed
		r.AccessTokens = append(r.AccessTokens, accessKey)
		r.Family = familyID
		return true, nil
	})
}

// revokeRedeemed takes back what was issued for a redeemed device code.
func (t *tokens) revokeRedeemed(ctx context.Context, r *deviceRecord) {
	ctx = context.WithoutCancel(ctx)
	for _, k := range r.AccessTokens {
		ops := []store.Op{store.Delete(k)}
		if r.SID != "" {
			ops = append(ops, store.SetRemove(setBySession+r.SID, k))
		}
		_ = t.st.Apply(ctx, ops...)
	}
	if r.Family != "" {
		_ = t.revokeFamily(ctx, r.Family)
	}
}
