package users

import (
	"context"
	"crypto/rand"
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
	Subject           string    `json:"sub"`
	Username          string    `json:"username"`
	Email             string    `json:"email,omitempty"`
	EmailVerified     bool      `json:"email_verified,omitempty"`
	Name              string    `json:"name,omitempty"`
	GivenName         string    `json:"given_name,omitempty"`
	FamilyName        string    `json:"family_name,omitempty"`
	Groups            []string  `json:"groups,omitempty"`
	Disabled          bool      `json:"disabled,omitempty"`
	PasswordHash      string    `json:"password_hash,omitempty"`
	PasswordChangedAt time.Time `json:"password_changed_at,omitzero"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

// Public returns u without secrets, for listings.
func (u User) Public() User {
	u.PasswordHash = ""
	return u
}

// Directory is the user directory over a store.
type Directory struct {
	st  store.Store
	now func() time.Time
}

// New returns a directory over st; now may be nil for time.Now.
func New(st store.Store, now func() time.Time) *Directory {
	if now == nil {
		now = time.Now
	}
	return &Directory{st: st, now: now}
}

const (
	keyUser  = "user:"
	keyName  = "user-name:"
	keyEmail = "user-email:"
	setUsers = "users"
)

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
// use.
func (d *Directory) Create(ctx context.Context, u User, password string) (User, error) {
	if err := ValidateUsername(u.Username); err != nil {
		return User{}, err
	}
	if u.Email != "" && !strings.Contains(u.Email, "@") {
		return User{}, fmt.Errorf("email %q is not an email address", u.Email)
	}
	if password != "" {
		h, err := HashPassword(password)
		if err != nil {
			return User{}, err
		}
		u.PasswordHash = h
		u.PasswordChangedAt = d.now()
	}
	// A username may look like an email: it must not shadow another
	// account's email at login, nor the other way round.
	for _, k := range []string{keyEmail + fold(u.Username), keyName + fold(u.Email)} {
		if k == keyName {
			continue
		}
		if _, err := d.st.Get(ctx, k); err == nil {
			return User{}, ErrTaken
		} else if !errors.Is(err, store.ErrNotFound) {
			return User{}, fmt.Errorf("checking for duplicates: %w", err)
		}
	}
	u.Subject = newSubject()
	u.CreatedAt = d.now()
	u.UpdatedAt = u.CreatedAt
	if err := d.st.Create(ctx, keyName+fold(u.Username), []byte(u.Subject), 0); err != nil {
		if errors.Is(err, store.ErrExists) {
			return User{}, ErrTaken
		}
		return User{}, fmt.Errorf("reserving username: %w", err)
	}
	if u.Email != "" {
		if err := d.st.Create(ctx, keyEmail+fold(u.Email), []byte(u.Subject), 0); err != nil {
			_ = d.st.Delete(ctx, keyName+fold(u.Username))
			if errors.Is(err, store.ErrExists) {
				return User{}, ErrTaken
			}
			return User{}, fmt.Errorf("reserving email: %w", err)
		}
	}
	if err := d.put(ctx, u); err != nil {
		return User{}, err
	}
	if err := d.st.SetAdd(ctx, setUsers, u.Subject); err != nil {
		return User{}, fmt.Errorf("indexing user: %w", err)
	}
	return u, nil
}

func (d *Directory) put(ctx context.Context, u User) error {
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	if err := d.st.Set(ctx, keyUser+u.Subject, b, 0); err != nil {
		return fmt.Errorf("saving user: %w", err)
	}
	return nil
}

// Get returns the user with subject sub.
func (d *Directory) Get(ctx context.Context, sub string) (User, error) {
	b, err := d.st.Get(ctx, keyUser+sub)
	if errors.Is(err, store.ErrNotFound) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("reading user: %w", err)
	}
	var u User
	if err := json.Unmarshal(b, &u); err != nil {
		return User{}, fmt.Errorf("decoding user %s: %w", sub, err)
	}
	return u, nil
}

// Lookup finds a user by username or email, case-insensitively.
func (d *Directory) Lookup(ctx context.Context, login string) (User, error) {
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
	return User{}, ErrNotFound
}

// Authenticate checks login and password. Every failure (unknown user,
// wrong password, disabled account, no password set) returns
// ErrInvalidCredentials after the same amount of hashing work.
func (d *Directory) Authenticate(ctx context.Context, login, password string) (User, error) {
	u, err := d.Lookup(ctx, login)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return User{}, err
	}
	hash := u.PasswordHash
	if hash == "" {
		hash = dummyHash
	}
	ok, herr := CheckPassword(hash, password)
	if herr != nil || !ok || u.Subject == "" || u.PasswordHash == "" || u.Disabled {
		return User{}, ErrInvalidCredentials
	}
	return u, nil
}

// Update applies fn to the user and saves it. Username and email changes
// move their index entries.
func (d *Directory) Update(ctx context.Context, sub string, fn func(*User) error) (User, error) {
	old, err := d.Get(ctx, sub)
	if err != nil {
		return User{}, err
	}
	u := old
	u.Groups = slices.Clone(old.Groups)
	if err := fn(&u); err != nil {
		return User{}, err
	}
	u.Subject = old.Subject
	nameChanged := fold(u.Username) != fold(old.Username)
	emailChanged := fold(u.Email) != fold(old.Email)
	if nameChanged {
		if err := ValidateUsername(u.Username); err != nil {
			return User{}, err
		}
	}
	if emailChanged && u.Email != "" && !strings.Contains(u.Email, "@") {
		return User{}, fmt.Errorf("email %q is not an email address", u.Email)
	}
	// As in Create: a new username must not shadow another account's
	// email at login, nor a new email another account's username.
	var shadow []string
	if nameChanged {
		shadow = append(shadow, keyEmail+fold(u.Username))
	}
	if emailChanged && u.Email != "" {
		shadow = append(shadow, keyName+fold(u.Email))
	}
	for _, k := range shadow {
		owner, err := d.st.Get(ctx, k)
		if err == nil && string(owner) != sub {
			return User{}, ErrTaken
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return User{}, fmt.Errorf("checking for duplicates: %w", err)
		}
	}
	// Reserve the new names first and release the old ones only once the
	// user is saved, so that a refused or failed update changes nothing.
	var reserved []string
	undo := func() {
		for _, k := range reserved {
			_ = d.st.Delete(ctx, k)
		}
	}
	reserve := func(k string) error {
		if err := d.st.Create(ctx, k, []byte(sub), 0); err != nil {
			undo()
			if errors.Is(err, store.ErrExists) {
				return ErrTaken
			}
			return err
		}
		reserved = append(reserved, k)
		return nil
	}
	if nameChanged {
		if err := reserve(keyName + fold(u.Username)); err != nil {
			return User{}, err
		}
	}
	if emailChanged && u.Email != "" {
		if err := reserve(keyEmail + fold(u.Email)); err != nil {
			return User{}, err
		}
	}
	u.UpdatedAt = d.now()
	if err := d.put(ctx, u); err != nil {
		undo()
		return User{}, err
	}
	if nameChanged {
		_ = d.st.Delete(ctx, keyName+fold(old.Username))
	}
	if emailChanged && old.Email != "" {
		_ = d.st.Delete(ctx, keyEmail+fold(old.Email))
	}
	return u, nil
}

// SetPassword replaces the user's password.
func (d *Directory) SetPassword(ctx context.Context, sub, password string) (User, error) {
	if password == "" {
		return User{}, errors.New("password must not be empty")
	}
	h, err := HashPassword(password)
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
