package users

import (
	"context"
	"errors"
	"fmt"

	"github.com/gatehouse-idp/gatehouse/store"
)

// Delete removes the user with subject sub: the record, its name and
// address in the indexes (only where they are still this user's), and
// its place in the list, in one batch. The subject is never reused.
// Sessions, tokens and what modules keep of the user are the caller's
// to end first (logout, the provider, the chain).
func (d *Directory) Delete(ctx context.Context, sub string) error {
	for range 5 {
		u, rec, err := d.read(ctx, sub)
		if err != nil {
			return err
		}
		ops := []store.Op{store.Match(keyUser+sub, rec), store.Delete(keyUser + sub), store.SetRemove(setUsers, sub)}
		idx := []string{keyName + fold(u.Username)}
		if e := claimed(u); e != "" {
			idx = append(idx, keyEmail+fold(e))
		}
		for k := range remoteKeys(u) {
			idx = append(idx, k) // its linked identities are free again
		}
		if f := u.Federation; f != nil {
			// Its source's entry is imported anew (another subject) at
			// its next sign-in.
			idx = append(idx, sourceKey(f.Source, f.ID))
		}
		for _, k := range idx {
			owner, err := d.st.Get(ctx, k)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return fmt.Errorf("deleting user: %w", err)
			case string(owner) == sub:
				ops = append(ops, store.Match(k, owner), store.Delete(k))
			}
		}
		if e := pending(u); e != "" {
			ops = append(ops, store.SetRemove(setPending+fold(e), sub))
		}
		switch err := d.st.Apply(ctx, ops...); {
		case err == nil:
			return nil
		case !errors.Is(err, store.ErrConflict):
			return fmt.Errorf("deleting user: %w", err)
		}
		// Changed meanwhile: read it again.
	}
	return fmt.Errorf("deleting user: %w", store.ErrConflict)
}
