package users

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/gatehouse-idp/gatehouse/store"
)

// Errors of the directory.
var (
	ErrNotFound = errors.New("user not found")
	// ErrTaken: the username or email belongs to another account.
	ErrTaken = errors.New("username or email already in use")
	// ErrInvalidCredentials is the one answer for unknown user, wrong
	// password and disabled account, so callers cannot tell them apart.
	ErrInvalidCredentials = errors.New("invalid username or password")
)

// User is an account.
type User struct {
	Subject       string   `json:"sub"`
	Username      string   `json:"username"`
	Email         string   `json:"email,omitempty"`
	EmailVerified bool     `json:"email_verified,omitempty"`
	Name          string   `json:"name,omitempty"`
	GivenName     string   `json:"given_name,omitempty"`
	FamilyName    string   `json:"family_name,omitempty"`
	Groups        []string `json:"groups,omitempty"`
	// The rest of the profile OpenID Connect can release (OIDC Core
	// §5.1), each under its scope.
	MiddleName          string   `json:"middle_name,omitempty"`
	Nickname            string   `json:"nickname,omitempty"`
	Picture             string   `json:"picture,omitempty"`
	Website             string   `json:"website,omitempty"`
	Locale              string   `json:"locale,omitempty"`
	Zoneinfo            string   `json:"zoneinfo,omitempty"`
	PhoneNumber         string   `json:"phone_number,omitempty"`
	PhoneNumberVerified bool     `json:"phone_number_verified,omitempty"`
	Address             *Address `json:"address,omitempty"`
	// Attributes are further claims by name (gender, birthdate,
	// aq:location, an admin-defined scope's claims), released as strings.
	Attributes        map[string]string `json:"attributes,omitempty"`
	Disabled          bool              `json:"disabled,omitempty"`
	PasswordHash      string            `json:"password_hash,omitempty"`
	PasswordChangedAt time.Time         `json:"password_changed_at,omitzero"`
	CreatedAt         time.Time         `json:"created_at"`
	UpdatedAt         time.Time         `json:"updated_at"`

	// Inactive: the account awaits activation (it was created by
	// sign-up and its address is not proven yet). Its password may be
	// checked, so that activation can follow, but no session is made
	// for it until an activation module activates it. Its address is
	// not claimed: several inactive accounts may name one address, and
	// the one activated first claims it (see Create).
	Inactive bool `json:"inactive,omitempty"`

	// Remotes are the identities at other issuers linked to the
	// account (see Remote).
	Remotes []Remote `json:"remotes,omitempty"`

	// Federation, when set, says the account was imported from a user
	// source (LDAP): it has no local password and what the source owns
	// is read-only here (see Source).
	Federation *Federation `json:"federation,omitempty"`
}

// Address is a postal address (OIDC Core §5.1.1).
type Address struct {
	Formatted     string `json:"formatted,omitempty"`
	StreetAddress string `json:"street_address,omitempty"`
	Locality      string `json:"locality,omitempty"`
	Region        string `json:"region,omitempty"`
	PostalCode    string `json:"postal_code,omitempty"`
	Country       string `json:"country,omitempty"`
}

// Empty reports whether no part of the address is known.
func (a *Address) Empty() bool { return a == nil || *a == Address{} }

// Public returns u without secrets, for listings.
func (u User) Public() User {
	u.PasswordHash = ""
	return u
}

// Directory is the user directory over a store.
type Directory struct {
	st     store.Store
	now    func() time.Time
	hasher *Hasher
	policy *PasswordPolicy
	// sources are federated user directories (see Source); recheck is
	// how long a federated account stays confirmed (see Current).
	sources []Source
	recheck time.Duration
}

// Options configure a Directory.
type Options struct {
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Hasher hashes and checks passwords; default: argon2id with OWASP's
	// parameters, twice the CPUs at once.
	Hasher *Hasher
	// Policy, when set, is checked on every new password.
	Policy *PasswordPolicy
	// Sources are user sources (LDAP) beside the local accounts, asked
	// in order; Recheck is how long a source's word on an account holds
	// before Current asks again (0: every time).
	Sources []Source
	Recheck time.Duration
}

// New returns a directory over st; now may be nil for time.Now.
func New(st store.Store, now func() time.Time) *Directory {
	return NewWith(st, Options{Now: now})
}

// NewWith returns a directory over st with opts.
func NewWith(st store.Store, opts Options) *Directory {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Hasher == nil {
		opts.Hasher = defaultHasher
	}
	return &Directory{st: st, now: opts.Now, hasher: opts.Hasher, policy: opts.Policy,
		sources: slices.Clone(opts.Sources), recheck: opts.Recheck}
}

// WithoutPolicy is the same directory without the password policy, for
// accounts whose password the configuration fixes (the quick start's
// demo user, warned about loudly at every start).
func (d *Directory) WithoutPolicy() *Directory {
	c := *d
	c.policy = nil
	return &c
}

// Hasher is the directory's password hasher.
func (d *Directory) Hasher() *Hasher { return d.hasher }

// newHash checks password against the policy (for u) and hashes it.
func (d *Directory) newHash(ctx context.Context, password string, u User) (string, error) {
	if d.policy != nil {
		if err := d.policy.Check(password, u); err != nil {
			return "", err
		}
	}
	return d.hasher.Hash(ctx, password)
}

const (
	keyUser  = "user:"
	keyName  = "user-name:"
	keyEmail = "user-email:"
	// setPending + address: the inactive accounts that name it.
	setPending = "user-pending-email:"
	setUsers   = "users"
)

// claimed is the address u holds in the email index: an active
// account's. An inactive account's address is only pending: it is not
// proven, so it must not keep its owner from signing up nor tell anyone
// that an account has it.
func claimed(u User) string {
	if u.Inactive {
		return ""
	}
	return u.Email
}

// pending is the address an inactive account names.
func pending(u User) string {
	if !u.Inactive {
		return ""
	}
	return u.Email
}

// ValidateUsername checks a username: 1-64 letters, digits, '.', '_', '-', '@'.
func ValidateUsername(name string) error {
	if name == "" || len(name) > 64 {
		return errors.New("username must be 1 to 64 characters")
	}
	for _, r := range name {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("._-@+", r)) {
			return fmt.Errorf("username may contain letters, digits and . _ - @ + only, not %q", r)
		}
	}
	return nil
}

// Create adds u (Subject is assigned) with the given password (empty: no
// password login). It fails with ErrTaken when the username or email is in
// use; an inactive account's email is not checked nor claimed (only its
// username is): it is claimed when the account is activated.
func (d *Directory) Create(ctx context.Context, u User, password string) (User, error) {
	if err := ValidateUsername(u.Username); err != nil {
		return User{}, err
	}
	if u.Email != "" && !strings.Contains(u.Email, "@") {
		return User{}, fmt.Errorf("email %q is not an email address", u.Email)
	}
	if err := checkRemotes(u.Remotes); err != nil {
		return User{}, err
	}
	if err := d.notShadowing(ctx, u); err != nil {
		return User{}, err
	}
	if password != "" && u.Federation != nil {
		return User{}, &ReadOnlyError{Field: "password", User: u.Username, Source: u.Federation.Source}
	}
	if password != "" {
		h, err := d.newHash(ctx, password, u)
		if err != nil {
			return User{}, err
		}
		u.PasswordHash = h
		u.PasswordChangedAt = d.now()
	}
	u.Subject = newSubject()
	u.CreatedAt = d.now()
	u.UpdatedAt = u.CreatedAt
	rec, err := json.Marshal(u)
	if err != nil {
		return User{}, fmt.Errorf("encoding user: %w", err)
	}
	// One batch: the record, its index entries and its place in the list
	// are written together or not at all, so a crash or a store error
	// cannot leave a user who signs in but is not listed, nor a name
	// reserved by no one. A username may look like an email: it must not
	// shadow another account's email at login, nor the other way round.
	sub := []byte(u.Subject)
	ops := []store.Op{
		store.Absent(keyEmail + fold(u.Username)),
		store.Create(keyName+fold(u.Username), sub, 0),
	}
	if e := claimed(u); e != "" {
		ops = append(ops,
			store.Absent(keyName+fold(e)),
			store.Create(keyEmail+fold(e), sub, 0))
	}
	if e := pending(u); e != "" {
		ops = append(ops, store.SetAdd(setPending+fold(e), u.Subject))
	}
	ops = append(ops, remoteOps(User{}, u)...)
	ops = append(ops, sourceOps(u)...)
	ops = append(ops,
		store.Create(keyUser+u.Subject, rec, 0),
		store.SetAdd(setUsers, u.Subject))
	if err := d.st.Apply(ctx, ops...); errors.Is(err, store.ErrExists) {
		return User{}, d.taken(ctx, User{}, u)
	} else if err != nil {
		return User{}, fmt.Errorf("creating user: %w", err)
	}
	return u, nil
}

// Get returns the user with subject sub.
func (d *Directory) Get(ctx context.Context, sub string) (User, error) {
	u, _, err := d.read(ctx, sub)
	return u, err
}

// read returns the user with subject sub and the stored bytes it was
// decoded from (what Update compares against before it writes).
func (d *Directory) read(ctx context.Context, sub string) (User, []byte, error) {
	b, err := d.st.Get(ctx, keyUser+sub)
	if errors.Is(err, store.ErrNotFound) {
		return User{}, nil, ErrNotFound
	}
	if err != nil {
		return User{}, nil, fmt.Errorf("reading user: %w", err)
	}
	var u User
	if err := json.Unmarshal(b, &u); err != nil {
		return User{}, nil, fmt.Errorf("decoding user %s: %w", sub, err)
	}
	return u, b, nil
}

// Lookup finds a user by username or email, case-insensitively. An
// address no active account has finds the inactive account that names
// it, when exactly one does. A login no local account has is looked up
// at the user sources, and imported from the first that knows it.
func (d *Directory) Lookup(ctx context.Context, login string) (User, error) {
	u, err := d.lookupLocal(ctx, login)
	if errors.Is(err, ErrNotFound) && len(d.sources) > 0 && strings.TrimSpace(login) != "" {
		return d.lookupSources(ctx, strings.TrimSpace(login))
	}
	return u, err
}

// lookupLocal is Lookup among the accounts held here.
func (d *Directory) lookupLocal(ctx context.Context, login string) (User, error) {
	login = fold(strings.TrimSpace(login))
	if login == "" {
		return User{}, ErrNotFound
	}
	for _, prefix := range []string{keyName, keyEmail} {
		sub, err := d.st.Get(ctx, prefix+login)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return User{}, fmt.Errorf("looking up user: %w", err)
		}
		return d.Get(ctx, string(sub))
	}
	if !strings.Contains(login, "@") {
		return User{}, ErrNotFound
	}
	subs, err := d.st.SetMembers(ctx, setPending+login)
	if err != nil {
		return User{}, fmt.Errorf("looking up user: %w", err)
	}
	if len(subs) != 1 {
		return User{}, ErrNotFound // none, or several: the username tells them apart
	}
	return d.Get(ctx, subs[0])
}

// Authenticate checks login and password. Every failure (unknown user,
// wrong password, disabled account, no password set) returns
// ErrInvalidCredentials after the same amount of hashing work. ErrBusy
// means too many checks are running: nothing was checked. A password
// hashed under other parameters is rehashed with the current ones.
//
// Local accounts come first: a login a local account has is checked
// against its hash, and never at a user source. The password of an
// account imported from a source, or of a login no local account has,
// is checked at the sources (see Source): never against a local hash.
func (d *Directory) Authenticate(ctx context.Context, login, password string) (User, error) {
	u, err := d.lookupLocal(ctx, login)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return User{}, err
	}
	if u.Federation != nil || u.Subject == "" && len(d.sources) > 0 {
		return d.authenticateSource(ctx, u, login, password)
	}
	ok, stale, herr := d.hasher.Check(ctx, u.PasswordHash, password)
	if errors.Is(herr, ErrBusy) || errors.Is(herr, context.Canceled) || errors.Is(herr, context.DeadlineExceeded) {
		return User{}, herr
	}
	if herr != nil || !ok || u.Subject == "" || u.PasswordHash == "" || u.Disabled {
		return User{}, ErrInvalidCredentials
	}
	if stale {
		if h, err := d.hasher.Hash(ctx, password); err == nil {
			old := u.PasswordHash
			// Only if nobody changed the password meanwhile.
			_, _ = d.Update(ctx, u.Subject, func(x *User) error {
				if x.PasswordHash == old {
					x.PasswordHash = h
				}
				return nil
			})
		}
	}
	return u, nil
}

// CheckPassword checks a new password against the directory's policy
// without setting it.
func (d *Directory) CheckPassword(password string, u User) error {
	if d.policy == nil {
		return nil
	}
	return d.policy.Check(password, u)
}

// maxUpdateAttempts bounds how often Update reads the user again after
// losing a race with another writer.
const maxUpdateAttempts = 10

// Update applies fn to the user and saves it. Username and email changes
// move their index entries.
//
// The record and its index entries change in one atomic batch, and only
// if the record is still the one fn was given: if another writer changed
// it in between, Update reads it again and calls fn again on the new
// copy. So fn may run more than once; it must only change the user it is
// given (a fresh copy each time) and have no other side effects. After
// maxUpdateAttempts lost races Update gives up with an error wrapping
// store.ErrConflict.
//
// On an account imported from a user source, fn may not change what the
// source owns (ErrReadOnly, see ReadOnlyError).
func (d *Directory) Update(ctx context.Context, sub string, fn func(*User) error) (User, error) {
	return d.update(ctx, sub, fn, false)
}

// update is Update; sync lets fn change what a user source owns.
func (d *Directory) update(ctx context.Context, sub string, fn func(*User) error, sync bool) (User, error) {
	for attempt := 0; ; attempt++ {
		start := time.Now()
		u, retry, err := d.tryUpdate(ctx, sub, fn, sync)
		if !retry {
			return u, err
		}
		if attempt+1 >= maxUpdateAttempts {
			return User{}, fmt.Errorf("updating user %s: changed by others %d times in a row: %w", sub, maxUpdateAttempts, store.ErrConflict)
		}
		if err := backoff(ctx, time.Since(start), attempt); err != nil {
			return User{}, err
		}
	}
}

// tryUpdate is one compare-and-swap round of Update. retry reports that
// the record (or an index entry it relied on) changed after it was read:
// nothing was written and the round should be run again.
func (d *Directory) tryUpdate(ctx context.Context, sub string, fn func(*User) error, sync bool) (_ User, retry bool, _ error) {
	old, oldRec, err := d.read(ctx, sub)
	if err != nil {
		return User{}, false, err
	}
	u := old
	u.Groups = slices.Clone(old.Groups)
	u.Remotes = slices.Clone(old.Remotes)
	if f := old.Federation; f != nil {
		c := *f // fn must not reach old's through the pointer
		u.Federation = &c
	}
	if err := fn(&u); err != nil {
		return User{}, false, err
	}
	if !sync {
		if err := readOnly(old, u); err != nil {
			return User{}, false, err
		}
	}
	if err := checkRemotes(u.Remotes); err != nil {
		return User{}, false, err
	}
	u.Subject = old.Subject
	nameChanged := fold(u.Username) != fold(old.Username)
	if nameChanged {
		if err := ValidateUsername(u.Username); err != nil {
			return User{}, false, err
		}
	}
	if fold(u.Email) != fold(old.Email) && u.Email != "" && !strings.Contains(u.Email, "@") {
		return User{}, false, fmt.Errorf("email %q is not an email address", u.Email)
	}
	// The index holds the claimed address: a change of address, or an
	// account activated (claiming its address) or made inactive.
	oldEmail, newEmail := claimed(old), claimed(u)
	emailChanged := fold(newEmail) != fold(oldEmail)
	ops := []store.Op{store.Match(keyUser+sub, oldRec)}
	// As in Create: a new username must not shadow another account's
	// email at login, nor a new email another account's username. The
	// account's own entries may be shadowed (a username changed to the
	// account's email); the batch then requires them to still be its own.
	var shadow []string
	if nameChanged {
		shadow = append(shadow, keyEmail+fold(u.Username))
	}
	if emailChanged && newEmail != "" {
		shadow = append(shadow, keyName+fold(newEmail))
	}
	for _, k := range shadow {
		owner, err := d.st.Get(ctx, k)
		switch {
		case errors.Is(err, store.ErrNotFound):
			ops = append(ops, store.Absent(k))
		case err != nil:
			return User{}, false, fmt.Errorf("checking for duplicates: %w", err)
		case string(owner) != sub:
			return User{}, false, ErrTaken
		default:
			ops = append(ops, store.Match(k, owner))
		}
	}
	u.UpdatedAt = d.now()
	rec, err := json.Marshal(u)
	if err != nil {
		return User{}, false, fmt.Errorf("encoding user: %w", err)
	}
	// The new names are claimed and the old ones released in the same
	// batch as the record, so a refused or failed update changes nothing
	// and needs no clean-up.
	ops = append(ops, store.Put(keyUser+sub, rec, 0))
	if nameChanged {
		ops = append(ops,
			store.Create(keyName+fold(u.Username), []byte(sub), 0),
			store.Delete(keyName+fold(old.Username)))
	}
	if emailChanged && newEmail != "" {
		ops = append(ops, store.Create(keyEmail+fold(newEmail), []byte(sub), 0))
	}
	if emailChanged && oldEmail != "" {
		ops = append(ops, store.Delete(keyEmail+fold(oldEmail)))
	}
	if p, q := pending(old), pending(u); fold(p) != fold(q) {
		if p != "" {
			ops = append(ops, store.SetRemove(setPending+fold(p), sub))
		}
		if q != "" {
			ops = append(ops, store.SetAdd(setPending+fold(q), sub))
		}
	}
	ops = append(ops, remoteOps(old, u)...)
	switch err := d.st.Apply(ctx, ops...); {
	case err == nil:
		return u, false, nil
	case errors.Is(err, store.ErrConflict):
		return User{}, true, nil
	case errors.Is(err, store.ErrExists):
		return User{}, false, d.taken(ctx, old, u)
	default:
		return User{}, false, fmt.Errorf("saving user: %w", err)
	}
}

// backoff waits a random time (or until ctx is done) below round·2^attempt,
// round being how long the lost attempt took (at least 100µs, at most
// 250ms in all), so that writers who collided spread out instead of
// colliding again in lockstep, whatever the store's latency and fn's cost.
func backoff(ctx context.Context, round time.Duration, attempt int) error {
	limit := min(max(round, 100*time.Microsecond)<<min(attempt, 10), 250*time.Millisecond)
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	t := time.NewTimer(time.Duration(binary.LittleEndian.Uint64(b[:]) % uint64(limit)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// SetPassword replaces the user's password.
func (d *Directory) SetPassword(ctx context.Context, sub, password string) (User, error) {
	if password == "" {
		return User{}, errors.New("password must not be empty")
	}
	cur, err := d.Get(ctx, sub)
	if err != nil {
		return User{}, err
	}
	if cur.Federation != nil {
		return User{}, &ReadOnlyError{Field: "password", User: cur.Username, Source: cur.Federation.Source}
	}
	h, err := d.newHash(ctx, password, cur)
	if err != nil {
		return User{}, err
	}
	return d.Update(ctx, sub, func(u *User) error {
		u.PasswordHash = h
		u.PasswordChangedAt = d.now()
		return nil
	})
}

// List returns every user, ordered by username.
func (d *Directory) List(ctx context.Context) ([]User, error) {
	subs, err := d.st.SetMembers(ctx, setUsers)
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	out := make([]User, 0, len(subs))
	for _, s := range subs {
		u, err := d.Get(ctx, s)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(fold(a.Username), fold(b.Username)) })
	return out, nil
}

func fold(s string) string { return strings.ToLower(s) }

func newSubject() string {
	// 128 random bits as a UUIDv4: stable, opaque, never reused.
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
