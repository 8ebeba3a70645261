package web

import (
	"strconv"
	"time"
)

// Duration says d for people, rounded to its largest unit, as a text
// pages translate (an argument of Sprintf, or shown by t).
func Duration(d time.Duration) string {
	round := func(unit time.Duration) string { return strconv.Itoa(int((d + unit/2) / unit)) }
	switch {
	case d <= time.Second:
		return Sprintf("a second")
	case d < time.Minute:
		return Sprintf("%s seconds", strconv.Itoa(int((d+time.Second-1)/time.Second)))
	case d < 90*time.Second:
		return Sprintf("a minute")
	case d < time.Hour:
		return Sprintf("%s minutes", round(time.Minute))
	case d < 90*time.Minute:
		return Sprintf("an hour")
	case d < 22*time.Hour+30*time.Minute:
		return Sprintf("%s hours", round(time.Hour))
	case d < 36*time.Hour:
		return Sprintf("a day")
	default:
		return Sprintf("%s days", round(24*time.Hour))
	}
}
