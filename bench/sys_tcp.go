package main

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
)

// tcpSystem is the floor for req/rep latency: a plain net.Conn over TCP
// loopback, one length-prefixed message (4-byte big-endian length, then
// the body) echoed back by a server goroutine, sequentially. No framing
// beyond the length, no codec, no routing: what any req/rep over TCP on
// this machine cannot beat.
func tcpSystem() *system {
	return &system{name: "tcp", partial: true, reqrep: tcpPingPong}
}

func tcpPingPong(size int) (*rpc, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4+size)
		for {
			if _, err := io.ReadFull(c, buf[:4]); err != nil {
				return
			}
			n := binary.BigEndian.Uint32(buf[:4])
			if int(n) > size { // never allocate from a claimed length
				return
			}
			if _, err := io.ReadFull(c, buf[4:4+n]); err != nil {
				return
			}
			if _, err := c.Write(buf[:4+n]); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		ln.Close()
		<-served
		return nil, err
	}
	out := make([]byte, 4+size)
	in := make([]byte, 4+size)
	return &rpc{
		call: func(b []byte) error {
			binary.BigEndian.PutUint32(out[:4], uint32(len(b)))
			copy(out[4:], b)
			if _, err := c.Write(out[:4+len(b)]); err != nil {
				return err
			}
			if _, err := io.ReadFull(c, in[:4]); err != nil {
				return err
			}
			n := binary.BigEndian.Uint32(in[:4])
			if int(n) != len(b) {
				return errors.New("short reply")
			}
			_, err := io.ReadFull(c, in[4:4+n])
			return err
		},
		close: func() {
			c.Close()
			ln.Close()
			<-served
		},
	}, nil
}
