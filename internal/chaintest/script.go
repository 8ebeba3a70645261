package chaintest

import (
	"context"
	"crypto/hmac"
	"encoding/json"

	"github.com/gatehouse-idp/gatehouse/chain"
)

func init() {
	chain.Register("test-script", newScript)
}

// ScriptSettings of a test-script module.
type ScriptSettings struct {
	// Static names a file of the web assets to load instead of the
	// module's own script.
	Static string `json:"static,omitempty"`
}

// ScriptBody is the script a test-script module carries.
const ScriptBody = "/* test-script: answers the challenge */"

// script passes when the page answers "ok:" + the challenge Begin gave
// (a stand-in for a WebAuthn assertion over the challenge).
type script struct{ s ScriptSettings }

func newScript(_ chain.Deps, s ScriptSettings) (chain.Module, error) { return &script{s: s}, nil }

func (m *script) Prompt(context.Context, *chain.Attempt) (chain.Prompt, error) {
	return chain.Prompt{Title: "Use your key", Intro: "Touch your key.", NoSubmit: true}, nil
}

func (m *script) Script() chain.Script {
	if m.s.Static != "" {
		return chain.Script{Static: m.s.Static}
	}
	return chain.Script{Body: []byte(ScriptBody)}
}

func (m *script) Begin(context.Context, *chain.Attempt, json.RawMessage) (any, []byte, error) {
	c := random()
	return map[string]string{"challenge": c}, []byte(c), nil
}

func (m *script) Finish(_ context.Context, a *chain.Attempt, in json.RawMessage, keep []byte) (chain.Identity, error) {
	var answer struct {
		Answer string `json:"answer"`
	}
	if json.Unmarshal(in, &answer) != nil || !hmac.Equal([]byte(answer.Answer), []byte("ok:"+string(keep))) {
		return chain.Identity{}, chain.Reject("The key's answer is wrong.")
	}
	return chain.Identity{Subject: a.Subject, AMR: []string{chain.AMRHardwareKey, chain.AMRUser}}, nil
}

var _ chain.ScriptedModule = (*script)(nil)
