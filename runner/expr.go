package runner

import (
	"fmt"
	"maps"
	"regexp"
	"strings"
	"text/template"

	"github.com/expr-lang/expr"
	exprparser "github.com/expr-lang/expr/parser"
)

// exprEngine evaluates ${ ... } blocks with expr-lang, the engine's
// expression language (engine-pipelines.md §2.7).
type exprEngine struct {
	funcs template.FuncMap // the template functions, step and trigger excluded
}

func newExprEngine(funcs template.FuncMap) *exprEngine {
	return &exprEngine{funcs: funcs}
}

// exprBlock matches an expression block: "${", one or more characters
// other than "}", then "}".
var exprBlock = regexp.MustCompile(`\$\{([^}]+)\}`)

// resolveBlocks replaces every expression block of s, left to right, by
// its value; the first error stops and is returned.
func (e *exprEngine) resolveBlocks(s string, pc *runContext) (string, error) {
	var firstErr error
	out := exprBlock.ReplaceAllStringFunc(s, func(block string) string {
		if firstErr != nil {
			return block
		}
		v, err := e.evaluate(strings.TrimSpace(block[2:len(block)-1]), pc)
		if err != nil {
			firstErr = err
			return block
		}
		return v
	})
	return out, firstErr
}

// env is an expression's environment, later entries winning: the
// functions, then current's keys, then steps, trigger, body (the trigger
// data again), meta and current.
func (e *exprEngine) env(pc *runContext) map[string]any {
	env := make(map[string]any, len(e.funcs)+len(pc.current)+5)
	for k, f := range e.funcs {
		env[k] = f
	}
	maps.Copy(env, pc.current)
	env["steps"] = pc.steps
	env["trigger"] = pc.trigger
	env["body"] = pc.trigger
	env["meta"] = pc.meta
	env["current"] = pc.current
	return env
}

// evaluate compiles and runs one expression; nil renders as "", anything
// else with %v.
func (e *exprEngine) evaluate(src string, pc *runContext) (string, error) {
	v, err := e.eval(src, pc)
	if err != nil {
		return "", err
	}
	if v == nil {
		return "", nil
	}
	return fmt.Sprintf("%v", v), nil
}

// eval compiles and runs one expression and returns its value.
func (e *exprEngine) eval(src string, pc *runContext) (any, error) {
	env := e.env(pc)
	prog, err := expr.Compile(src, expr.Env(env), expr.AllowUndefinedVariables())
	if err != nil {
		return nil, &textError{msg: fmt.Sprintf("expr compile error in %q: %v", src, err), errs: []error{ErrTemplate, err}}
	}
	v, err := expr.Run(prog, env)
	if err != nil {
		return nil, &textError{msg: fmt.Sprintf("expr eval error in %q: %v", src, err), errs: []error{ErrTemplate, err}}
	}
	return v, nil
}

// checkExpr reports a syntax error in an expression, for validation. Only
// the syntax can be checked offline: whether a name is a function or a
// data key (a data key shadows a function) is known only at run time.
func checkExpr(src string) error {
	_, err := exprparser.Parse(src)
	return err
}
