package testutil

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// Types are the ten socket types, by package, that the conformance suite
// covers on both sides; a test of this package checks the list against
// the constructors the pattern packages have.
var Types = map[string][]string{
	"pubsub":   {"Publisher", "Subscriber"},
	"reqrep":   {"Replier", "Requester"},
	"pipeline": {"Producer", "Puller", "Pusher", "Worker"},
	"survey":   {"Respondent", "Surveyor"},
}

// Conform is a pattern package's whole conformance run. It first checks
// that every socket type of the package under test (each exported NewX
// function in the current directory's non-test files) has a run in
// patterns and is a side of one of pairs, then runs the suite for each.
//
// Keys name the types: patterns "X" or "X/variant" (e.g.
// "Subscriber/bare"), pairs "A+B" or "A+B/variant" with A the sending
// side.
func Conform(t *testing.T, patterns map[string]Pattern, pairs map[string]Pair) {
	t.Run("EveryType", func(t *testing.T) {
		types, err := Constructors(".")
		if err != nil {
			t.Fatal(err)
		}
		if len(types) == 0 {
			t.Fatal("no NewX constructors found in the package under test")
		}
		run, paired := map[string]bool{}, map[string]bool{}
		for k := range patterns {
			name, _, _ := strings.Cut(k, "/")
			run[name] = true
		}
		for k := range pairs {
			sides, _, _ := strings.Cut(k, "/")
			a, b, ok := strings.Cut(sides, "+")
			if !ok {
				t.Errorf("pair %q: want a key A+B", k)
			}
			paired[a], paired[b] = true, true
		}
		for _, typ := range types {
			if !run[typ] {
				t.Errorf("New%s: no conformance run (add %q to the patterns)", typ, typ)
			}
			if !paired[typ] {
				t.Errorf("New%s: no pair check (add a pair with %s as one side)", typ, typ)
			}
		}
		for k := range run {
			if !slices.Contains(types, k) {
				t.Errorf("pattern %q: no constructor New%s", k, k)
			}
		}
	})
	for _, k := range sorted(patterns) {
		t.Run(k, func(t *testing.T) { Run(t, patterns[k]) })
	}
	for _, k := range sorted(pairs) {
		t.Run(k, func(t *testing.T) { RunPair(t, pairs[k]) })
	}
}

func sorted[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Constructors returns the socket types of the package in dir: X for
// every exported top-level func NewX in its non-test Go files that
// returns (*X, error).
func Constructors(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	var types []string
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !fn.Name.IsExported() || !strings.HasPrefix(fn.Name.Name, "New") {
				continue
			}
			typ := strings.TrimPrefix(fn.Name.Name, "New")
			res := fn.Type.Results
			if res == nil || len(res.List) != 2 {
				continue
			}
			star, ok := res.List[0].Type.(*ast.StarExpr)
			if !ok {
				continue
			}
			if id, ok := star.X.(*ast.Ident); ok && id.Name == typ {
				types = append(types, typ)
			}
		}
	}
	sort.Strings(types)
	return types, nil
}
