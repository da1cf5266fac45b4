package logx

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// aliases are keys the scheme replaced (with Remote, Node, Err) or that a
// user's logger may carry (component, source): no log call uses them.
var aliases = map[string]string{
	"peer": "remote or node", "addr": "remote or endpoint", "name": "node",
	"error": "err", "component": "nothing (the message prefix)", "source": "nothing (the message prefix)",
}

// TestLogCallsFollowTheScheme reads every non-test, non-example Go file
// of the module and checks each log call with a literal message: the
// message starts with "spmesh: " and no literal key is an alias above.
func TestLogCallsFollowTheScheme(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	calls := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "examples", "cmd", "bench", "testdata", ".git":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			c, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := c.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			// The message is the first string literal argument starting
			// with "spmesh" (Warn(msg, ...), Log(lg, level, peer, msg, ...),
			// logWarn(addr, msg, ...)); the key/value pairs follow it.
			msgAt := -1
			switch sel.Sel.Name {
			case "Debug", "Info", "Warn", "Error", "Log", "logWarn", "logRated":
				for i, a := range c.Args {
					if s, ok := lit(a); ok && strings.HasPrefix(s, "spmesh") {
						msgAt = i
						break
					}
				}
			}
			if msgAt < 0 {
				return true
			}
			calls++
			pos := fset.Position(c.Pos())
			msg, _ := lit(c.Args[msgAt])
			if !strings.HasPrefix(msg, "spmesh: ") {
				t.Errorf("%s: message %q does not start with \"spmesh: \"", pos, msg)
			}
			for i := msgAt + 1; i < len(c.Args); i += 2 {
				if k, ok := lit(c.Args[i]); ok {
					if want, bad := aliases[k]; bad {
						t.Errorf("%s: key %q: use %s", pos, k, want)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls < 30 {
		t.Fatalf("found %d log calls: the walk missed the module", calls)
	}
}

func lit(e ast.Expr) (string, bool) {
	b, ok := e.(*ast.BasicLit)
	if !ok || b.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(b.Value)
	return s, err == nil
}
