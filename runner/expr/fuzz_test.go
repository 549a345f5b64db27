package expr

import (
	"testing"

	"github.com/agentrunner/agentrunner/config"
)

// FuzzCompileTemplate checks that no input makes compiling or evaluating a template panic.
// Its seed corpus is testdata/fuzz/FuzzCompileTemplate plus the seeds below.
func FuzzCompileTemplate(f *testing.F) {
	for _, s := range []string{
		"Audit ${{ matrix.task }}. Fix what you find.",
		"${{ fromJSON(needs.plan.outputs.tasks) }}",
		"review-${{ event.pull_request.number }}",
		"${{ format('{0} {1}', inputs.a, join(needs.x.outputs.y, ',')) }}",
		"${{ a.b-c['d'] == 'x' && !(1 < 2) || null }}",
		"${{ '}}' }}${{",
	} {
		f.Add(s)
	}
	ctx := testContext()
	f.Fuzz(func(t *testing.T, src string) {
		tm, err := CompileTemplate(src, config.Pos{File: "f.yaml", Line: 1, Col: 1})
		if err != nil {
			if _, ok := err.(*config.Error); !ok {
				t.Fatalf("error is %T, want *config.Error", err)
			}
			return
		}
		_, _ = tm.Value(ctx)
		_, _ = tm.Partial(ctx, CtxNeeds)
		if c, err := CompileCondition(src, config.Pos{}); err == nil {
			_, _ = c.Eval(ctx)
		}
	})
}
