package chain_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/session"
)

// A branching chain: Password (1), then Code (2) on the default path, or
// Key (3) only when asked for.
func TestEvaluateBranches(t *testing.T) {
	d := newDeps(t)
	e := d.engine(t, chain.Config{Modules: []chain.ModuleConfig{
		mod("Password", "password", []string{"1"}),
		mod("Code", "testcode", []string{"2"}, "Password"),
		{Name: "Key", Kind: "testcode", Levels: []string{"3"}, After: []string{"Password"}, ShowOnlyWhenNeeded: true, Settings: settingsFor("testcode")},
	}})
	if got := e.Levels(); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("levels %v", got)
	}
	now := d.now
	pwd := session.Passed{Module: "Password", Kind: "password", Levels: []string{"1"}, AMR: []string{"pwd"}, At: now.Add(-time.Hour)}
	code := session.Passed{Module: "Code", Kind: "testcode", Levels: []string{"2"}, AMR: []string{"otp"}, At: now.Add(-30 * time.Minute)}
	key := session.Passed{Module: "Key", Kind: "testcode", Levels: []string{"3"}, AMR: []string{"otp"}, At: now.Add(-time.Minute)}
	pwdNow := pwd
	pwdNow.At = now
	dur := func(d time.Duration) *time.Duration { return &d }

	cases := []struct {
		name      string
		subject   string
		passed    []session.Passed
		acr       []string
		maxAge    *time.Duration
		done, sat bool
		acrOut    string
		levels    []string
		amr       []string
		authTime  time.Time
	}{
		// auth_time is when the start module (the password) was passed: a
		// later step-up does not make an old sign-in fresh.
		{"nothing", "alice", nil, nil, nil, false, false, "", nil, nil, time.Time{}},
		{"nothing, acr asked", "alice", nil, []string{"1"}, nil, false, false, "", nil, nil, time.Time{}},
		// The default path goes on to Code (not shown-only-when-needed).
		{"password only, default path continues", "alice", []session.Passed{pwd}, nil, nil, false, true, "1", []string{"1"}, []string{"pwd"}, pwd.At},
		// acr_values only add to the default path: asking for 1 does not
		// skip Code, which every login passes.
		{"password only, asks 1", "alice", []session.Passed{pwd}, []string{"1"}, nil, false, true, "1", []string{"1"}, []string{"pwd"}, pwd.At},
		{"password and code, asks 1", "alice", []session.Passed{pwd, code}, []string{"1"}, nil, true, true, "1", []string{"1", "2"}, []string{"pwd", "otp"}, pwd.At},
		{"password and code, default", "alice", []session.Passed{pwd, code}, nil, nil, true, true, "2", []string{"1", "2"}, []string{"pwd", "otp"}, pwd.At},
		// acr_values: the first entry satisfied wins, not the highest.
		{"asks 3 then 2, has 2", "alice", []session.Passed{pwd, code}, []string{"3", "2"}, nil, true, true, "2", []string{"1", "2"}, []string{"pwd", "otp"}, pwd.At},
		{"asks 2 then 3, has both", "alice", []session.Passed{pwd, code, key}, []string{"2", "3"}, nil, true, true, "2", []string{"1", "2", "3"}, []string{"pwd", "otp"}, pwd.At},
		{"asks 1 then 3, has all", "alice", []session.Passed{pwd, code, key}, []string{"1", "3"}, nil, true, true, "1", []string{"1", "2", "3"}, []string{"pwd", "otp"}, pwd.At},
		// Nothing asked: the highest-ranked passed level.
		{"all passed, none asked", "alice", []session.Passed{key, code, pwd}, nil, nil, true, true, "3", []string{"1", "2", "3"}, []string{"otp", "pwd"}, pwd.At},
		{"password and key, none asked", "alice", []session.Passed{pwd, key}, nil, nil, false, true, "3", []string{"1", "3"}, []string{"pwd", "otp"}, pwd.At},
		// Asked for more than passed: highest passed, not satisfied, go on.
		{"asks 3, has 2", "alice", []session.Passed{pwd, code}, []string{"3"}, nil, false, false, "2", []string{"1", "2"}, []string{"pwd", "otp"}, pwd.At},
		{"asks 3, has 1", "alice", []session.Passed{pwd}, []string{"3"}, nil, false, false, "1", []string{"1"}, []string{"pwd"}, pwd.At},
		// A level no module grants cannot be reached: the default path,
		// then done, unsatisfied.
		{"asks unknown", "alice", []session.Passed{pwd}, []string{"9"}, nil, false, false, "1", []string{"1"}, []string{"pwd"}, pwd.At},
		{"asks unknown, default path done", "alice", []session.Passed{pwd, code}, []string{"9"}, nil, true, false, "2", []string{"1", "2"}, []string{"pwd", "otp"}, pwd.At},
		{"asks unknown then 1", "alice", []session.Passed{pwd, code}, []string{"9", "1"}, nil, true, true, "1", []string{"1", "2"}, []string{"pwd", "otp"}, pwd.At},
		// max_age: only records passed recently enough count.
		{"max_age keeps all", "alice", []session.Passed{pwd, code}, []string{"2"}, dur(2 * time.Hour), true, true, "2", []string{"1", "2"}, []string{"pwd", "otp"}, pwd.At},
		{"max_age exactly the password's age", "alice", []session.Passed{pwd, code}, []string{"2"}, dur(time.Hour), true, true, "2", []string{"1", "2"}, []string{"pwd", "otp"}, pwd.At},
		{"max_age drops the password", "alice", []session.Passed{pwd, code}, []string{"2"}, dur(59 * time.Minute), false, true, "2", []string{"2"}, []string{"otp"}, code.At},
		{"max_age drops everything", "alice", []session.Passed{pwd, code}, nil, dur(time.Minute), false, false, "", nil, nil, time.Time{}},
		{"max_age 0: only this instant", "alice", []session.Passed{pwdNow, code}, []string{"1"}, dur(0), false, true, "1", []string{"1"}, []string{"pwd"}, now},
		// Without a subject the start module is asked again.
		{"no subject", "", []session.Passed{pwd}, []string{"1"}, nil, false, true, "1", []string{"1"}, []string{"pwd"}, pwd.At},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := e.Evaluate(context.Background(), map[string]string{"alice": d.alice.Subject}[tc.subject], tc.passed, tc.acr, sinceOf(d.clk.Now(), tc.maxAge))
			if err != nil {
				t.Fatal(err)
			}
			if o.Done != tc.done || o.Satisfied != tc.sat || o.ACR != tc.acrOut {
				t.Errorf("done=%v satisfied=%v acr=%q, want done=%v satisfied=%v acr=%q", o.Done, o.Satisfied, o.ACR, tc.done, tc.sat, tc.acrOut)
			}
			if !slices.Equal(o.Levels, tc.levels) {
				t.Errorf("levels %v, want %v", o.Levels, tc.levels)
			}
			wantAMR := tc.amr
			if len(wantAMR) > 1 {
				wantAMR = append(slices.Clone(wantAMR), "mfa")
			}
			if !slices.Equal(o.AMR, wantAMR) {
				t.Errorf("amr %v, want %v", o.AMR, wantAMR)
			}
			if !o.AuthTime.Equal(tc.authTime) {
				t.Errorf("auth time %v, want %v", o.AuthTime, tc.authTime)
			}
		})
	}

	// Evaluate does not change the records it is given.
	passed := []session.Passed{pwd, code}
	ten := 10 * time.Minute
	if _, err := e.Evaluate(context.Background(), d.alice.Subject, passed, nil, sinceOf(d.clk.Now(), &ten)); err != nil {
		t.Fatal(err)
	}
	if len(passed) != 2 || passed[0].Module != "Password" || passed[1].Module != "Code" {
		t.Fatalf("Evaluate changed its input: %+v", passed)
	}
	// A subject the directory does not know is an error, not an outcome.
	if _, err := e.Evaluate(context.Background(), "no-such-user", []session.Passed{pwd}, nil, time.Time{}); err == nil {
		t.Fatal("unknown subject evaluated")
	}
}
