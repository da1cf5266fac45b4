package sptcp

import (
	"fmt"
	"testing"

	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/pull"
	"go.nanomsg.org/mangos/v3/protocol/push"
	"go.nanomsg.org/mangos/v3/protocol/rep"
	"go.nanomsg.org/mangos/v3/protocol/req"
)

// BenchmarkPushPull streams 256-byte and 64 KiB messages through
// PUSH/PULL over loopback with each transport: one op is one message
// delivered.
func BenchmarkPushPull(b *testing.B) {
	for _, size := range []int{256, 64 << 10} {
		for _, s := range []side{stock, ours} {
			b.Run(fmt.Sprintf("%dB/%s", size, s.name), func(b *testing.B) {
				ps, _ := push.NewSocket()
				pl, _ := pull.NewSocket()
				defer ps.Close()
				defer pl.Close()
				connect(b, pl, ps, s, s, nil)
				body := make([]byte, size)
				b.ReportAllocs()
				b.SetBytes(int64(size))
				b.ResetTimer()
				go func() {
					for range b.N {
						m := mangos.NewMessage(size)
						m.Body = append(m.Body, body...)
						if ps.SendMsg(m) != nil {
							return
						}
					}
				}()
				for range b.N {
					m, err := pl.RecvMsg()
					if err != nil {
						b.Fatal(err)
					}
					m.Free()
				}
			})
		}
	}
}

// BenchmarkReqRep measures sequential round trips of 64-byte messages.
func BenchmarkReqRep(b *testing.B) {
	for _, s := range []side{stock, ours} {
		b.Run(s.name, func(b *testing.B) {
			rq, _ := req.NewSocket()
			rp, _ := rep.NewSocket()
			defer rq.Close()
			defer rp.Close()
			connect(b, rp, rq, s, s, nil)
			go func() {
				for {
					m, err := rp.RecvMsg()
					if err != nil || rp.SendMsg(m) != nil {
						return
					}
				}
			}()
			body := make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := rq.Send(body); err != nil {
					b.Fatal(err)
				}
				if _, err := rq.Recv(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
