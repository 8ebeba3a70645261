package web

import "slices"

// Marks are the providers' marks the stylesheet draws (classes
// mark-<name> on a choice), in CSS only: no image is fetched from
// anywhere. "oidc" is a plain one for any OpenID provider.
var Marks = []string{"oidc", "google", "microsoft", "github", "gitlab", "linkedin", "x", "facebook"}

// KnownMark reports whether the stylesheet draws mark.
func KnownMark(mark string) bool { return slices.Contains(Marks, mark) }
