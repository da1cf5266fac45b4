package reqrep_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/reqrep"
)

// Zero values and nil pointers decode to an error wrapping ErrDecode,
// through the method and through spmesh.Decode, never a panic.
func TestZeroValueDecode(t *testing.T) {
	for name, d := range map[string]spmesh.Decoder{
		"zero Request": &reqrep.Request{}, "nil Request": (*reqrep.Request)(nil),
		"zero Reply": &reqrep.Reply{}, "nil Reply": (*reqrep.Reply)(nil),
	} {
		var v string
		if err := d.Decode(&v); !errors.Is(err, spmesh.ErrDecode) {
			t.Errorf("%s: Decode = %v, want ErrDecode", name, err)
		}
		if _, err := spmesh.Decode[string](d); !errors.Is(err, spmesh.ErrDecode) {
			t.Errorf("spmesh.Decode[string](%s) = %v, want ErrDecode", name, err)
		}
	}
}

// Nil handlers are refused at construction.
func TestNilHandlerRefused(t *testing.T) {
	for name, h := range map[string]reqrep.Handler{
		"nil":               nil,
		"HandlerFunc(nil)":  reqrep.HandlerFunc(nil),
		"TypedHandler(nil)": reqrep.TypedHandler[string, string](nil),
	} {
		r, err := reqrep.NewReplier(h, reqrep.WithListen("inproc://nil-handler"))
		if !errors.Is(err, spmesh.ErrInvalidOption) {
			t.Errorf("NewReplier(%s) = %v, want ErrInvalidOption", name, err)
		}
		if r != nil {
			r.Close()
		}
	}
	ok := reqrep.TypedHandler(func(context.Context, *reqrep.Request, string) (string, error) { return "", nil })
	if ok == nil {
		t.Fatal("TypedHandler(f) is nil")
	}
}

// A side's option given to the other side fails naming that option, the
// first one given when several are wrong.
func TestSidedOptionNamed(t *testing.T) {
	_, err := reqrep.NewRequester(reqrep.WithConcurrency(4), reqrep.WithAttemptTimeout(time.Second))
	if !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), "WithConcurrency") {
		t.Errorf("NewRequester(WithConcurrency, WithAttemptTimeout) = %v, want ErrInvalidOption naming WithConcurrency", err)
	}
	_, err = reqrep.NewRequester(reqrep.WithAttemptTimeout(time.Second), reqrep.WithCredit(4))
	if !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), "WithCredit") {
		t.Errorf("NewRequester(..., WithCredit) = %v, want ErrInvalidOption naming WithCredit", err)
	}
	h := reqrep.HandlerFunc(func(context.Context, *reqrep.Request) (any, error) { return nil, nil })
	_, err = reqrep.NewReplier(h, reqrep.WithConcurrency(2), reqrep.WithMaxAttempts(3))
	if !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), "WithMaxAttempts") {
		t.Errorf("NewReplier(..., WithMaxAttempts) = %v, want ErrInvalidOption naming WithMaxAttempts", err)
	}
}

// Reply headers come back with the reply, an error reply included: from
// RequestHeader's result and Reply.Header, as survey answers carry theirs
// in Response.Header.
func TestErrorReplyHeaders(t *testing.T) {
	addr := testutil.Inproc(t)
	mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		req.SetReplyHeader("served-by", "r1")
		return nil, spmesh.Errorf(7, "refused")
	}), reqrep.WithListen(addr))
	rq := mustRequester(t, reqrep.WithDial(addr))
	peers(t, rq, 1)
	ctx := ctxT(t, 10*time.Second)
	var re *spmesh.RemoteError
	h, err := rq.RequestHeader(ctx, spmesh.Header{"k": "v"}, "x", nil)
	if !errors.As(err, &re) || re.Code != 7 || h.Get("served-by") != "r1" {
		t.Fatalf("RequestHeader: got %v, %v, want remote error 7 with header served-by=r1", h, err)
	}
	rep, err := rq.Do(ctx, &reqrep.Call{Body: "x"})
	if !errors.As(err, &re) || rep == nil || rep.Header.Get("served-by") != "r1" {
		t.Fatalf("Do: got %+v, %v, want remote error with header served-by=r1", rep, err)
	}
}
