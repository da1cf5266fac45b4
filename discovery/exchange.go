package discovery

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/logx"
	"github.com/vmihailenco/msgpack/v5"
)

// The records exchange: how a node learns another's endpoints.
//
// Endpoints never travel in gossip (anyone who can gossip could relay or
// forge them). A node's metadata carries only a digest (gen, count, flags);
// whoever sees a new gen pulls the records from the node itself, over TCP
// on the node's gossip address, so they come from the node they describe:
// the puller dialed that member's address, and with Config.TLS the
// member's certificate must name it (TLS.VerifyNode), with a gossip key
// both sides prove they hold it. The exchange shares the gossip port with
// memberlist: its first byte (exMagic) is one memberlist never sends first.
//
// Puller -> member: exMagic, a mode byte (exPlain, exKey, exTLS). Member ->
// puller: exOK, or exRefused when it does not accept that mode (the puller
// may fall back to another mode unless TLS.Require). Then, in exTLS mode
// inside a TLS session, each side sends one frame: a 4-byte big-endian
// length then the body (in exKey mode: a 12-byte nonce and the body sealed
// with AES-GCM under a gossip key).
//
//	request  [version uint, label string, to string, challenge bin]
//	response challenge bin, error string, then if error is "" a records
//	         body [node string, gen uint64, endpoints]
//
// The challenge (16 random bytes) makes every response fresh: a recorded
// answer cannot be replayed.
const (
	exMagic byte = 0xE5
	exPlain byte = 'P'
	exKey   byte = 'K'
	exTLS   byte = 'T'

	exOK      byte = 0
	exRefused byte = 1

	exVersion = 1

	maxRequestBytes  = 1024
	maxResponseBytes = 4 << 20 // MaxEndpoints endpoints of the longest fields
)

// errRefusedMode is a member not accepting the exchange mode offered (TLS
// to a member without TLS.Server, plaintext to one with a key or
// TLS.Require).
var errRefusedMode error = &exchangeError{"the member does not accept this exchange mode (TLS, gossip key or plaintext: configurations differ)"}

// exchangeError is a failure of the exchange that is not a network
// failure: the member spoke, but could not be trusted or understood.
type exchangeError struct{ msg string }

func (e *exchangeError) Error() string { return e.msg }

func protoErr(format string, args ...any) error {
	return &exchangeError{fmt.Sprintf(format, args...)}
}

// aead returns the AES-GCM cipher of a gossip key.
func aead(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func aad(dir byte) []byte { return []byte{exMagic, exVersion, dir} }

// writeFrame writes one frame, sealed under key when key is set.
func writeFrame(w io.Writer, body []byte, key []byte, dir byte) error {
	if key != nil {
		g, err := aead(key)
		if err != nil {
			return err
		}
		nonce := make([]byte, g.NonceSize(), g.NonceSize()+len(body)+g.Overhead())
		rand.Read(nonce)
		body = g.Seal(nonce, nonce, body, aad(dir))
	}
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(body)))
	if _, err := w.Write(append(l[:], body...)); err != nil {
		return err
	}
	return nil
}

// readFrame reads one frame of at most limit bytes (growing as the bytes
// arrive, never from the claimed length alone), opening it with one of
// keys when keys is set.
func readFrame(r io.Reader, limit int, keys [][]byte, dir byte) ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(l[:])
	if int64(n) > int64(limit) {
		return nil, protoErr("frame of %d bytes, limit %d", n, limit)
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err != nil {
		return nil, err
	}
	if len(b) != int(n) {
		return nil, io.ErrUnexpectedEOF
	}
	if keys == nil {
		return b, nil
	}
	for _, k := range keys {
		g, err := aead(k)
		if err != nil || len(b) < g.NonceSize() {
			continue
		}
		if out, err := g.Open(nil, b[:g.NonceSize()], b[g.NonceSize():], aad(dir)); err == nil {
			return out, nil
		}
	}
	return nil, protoErr("no installed gossip key opens the frame (a different key?)")
}

// serveExchange answers one pull on an incoming connection whose first
// byte (exMagic) was read. It never blocks past Config.TCPTimeout.
func (n *Node) serveExchange(c net.Conn, r *bufio.Reader) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(n.cfg.TCPTimeout))
	from := c.RemoteAddr().String()
	mode, err := r.ReadByte()
	if err != nil {
		return
	}
	var keys [][]byte
	if n.kr != nil {
		keys = n.kr.GetKeys()
	}
	pol := n.cfg.TLS
	ok := false
	switch mode {
	case exTLS:
		ok = pol.Server != nil
	case exKey:
		ok = keys != nil
	case exPlain:
		ok = keys == nil && !pol.Require
	}
	if !ok {
		// Count before answering, so that the refusal is counted by the
		// time the puller learns of it.
		n.refusedExchange(from, fmt.Errorf("mode %q not accepted by this node", mode))
		c.Write([]byte{exRefused})
		return
	}
	if _, err := c.Write([]byte{exOK}); err != nil {
		return
	}
	var rw io.ReadWriter = struct {
		io.Reader
		io.Writer
	}{r, c}
	var key []byte
	switch mode {
	case exTLS:
		tc := tls.Server(&prefixConn{Conn: c, r: r}, pol.Server)
		if err := tc.Handshake(); err != nil {
			n.refusedExchange(from, fmt.Errorf("TLS handshake: %v", err))
			return
		}
		rw = tc
	case exKey:
		key = n.kr.GetPrimaryKey()
	}
	if mode != exKey {
		keys = nil
	}
	req, err := readFrame(rw, maxRequestBytes, keys, 'q')
	if err != nil {
		var pe *exchangeError
		if errors.As(err, &pe) {
			n.refusedExchange(from, err)
		}
		return
	}
	label, to, challenge, err := decodeRequest(req)
	if err != nil {
		n.refusedExchange(from, err)
		return
	}
	var b bytes.Buffer
	e := msgpack.NewEncoder(&b)
	e.EncodeBytes(challenge)
	switch {
	case label != n.cfg.Label:
		e.EncodeString("label mismatch: a different Config.Label")
		n.refusedExchange(from, fmt.Errorf("label %q, want %q", label, n.cfg.Label))
	case to != n.name:
		e.EncodeString(fmt.Sprintf("no node %q here (this is %q)", to, n.name))
	default:
		e.EncodeString("")
		n.mu.Lock()
		name, eps := n.name, shareable(n.localEps)
		if n.forge != nil {
			name, eps = n.forge()
		}
		encodeRecords(&b, name, n.gen, eps)
		n.mu.Unlock()
	}
	writeFrame(rw, b.Bytes(), key, 'r')
}

// shareable keeps the endpoints a remote member could dial (or a
// respondent's name): ipc:// and inproc:// addresses only mean something
// inside this host or process.
func shareable(eps []spmesh.Endpoint) []spmesh.Endpoint {
	for _, ep := range eps {
		if !sharedAddr(ep.Addr) {
			out := make([]spmesh.Endpoint, 0, len(eps))
			for _, ep := range eps {
				if sharedAddr(ep.Addr) {
					out = append(out, ep)
				}
			}
			return out
		}
	}
	return eps
}

func sharedAddr(a string) bool {
	if strings.HasPrefix(a, spmesh.NameAddrPrefix) {
		return true
	}
	i := strings.Index(a, "://")
	return i > 0 && remoteSchemes[a[:i]]
}

// refusedExchange counts and logs (at most once per peer per 10 s) a pull this node
// refused or could not authenticate.
func (n *Node) refusedExchange(from string, err error) {
	n.handshakeErrors.Add(1)
	n.setLastError(fmt.Errorf("records exchange with %s: %v", from, err))
	n.logs.Log(n.log, slog.LevelWarn, logx.PeerKey(from), "spmesh: discovery: records exchange refused", logx.Remote, from, logx.Err, err)
}

func encodeRequest(label, to string, challenge []byte) []byte {
	var b bytes.Buffer
	e := msgpack.NewEncoder(&b)
	e.EncodeArrayLen(4)
	e.EncodeUint(exVersion)
	e.EncodeString(label)
	e.EncodeString(to)
	e.EncodeBytes(challenge)
	return b.Bytes()
}

func decodeRequest(b []byte) (label, to string, challenge []byte, err error) {
	d := msgpack.NewDecoder(bytes.NewReader(b))
	k, err := d.DecodeArrayLen()
	if err != nil || k < 4 {
		return "", "", nil, protoErr("malformed request")
	}
	if v, err := d.DecodeUint64(); err != nil || v != exVersion {
		return "", "", nil, protoErr("request version %d, want %d", v, exVersion)
	}
	if label, err = d.DecodeString(); err != nil {
		return "", "", nil, protoErr("malformed request")
	}
	if to, err = d.DecodeString(); err != nil {
		return "", "", nil, protoErr("malformed request")
	}
	if challenge, err = d.DecodeBytes(); err != nil || len(challenge) != 16 {
		return "", "", nil, protoErr("malformed request")
	}
	return label, to, challenge, nil
}

// pull fetches the records of the member name at addr (its gossip
// address), trying the modes this node's configuration allows, strongest
// first. The records are those of that member: the name inside must be
// name.
func (n *Node) pull(name, addr string, timeout time.Duration) (gen uint64, eps []spmesh.Endpoint, err error) {
	pol := n.cfg.TLS
	var modes []byte
	if pol.Client != nil {
		modes = append(modes, exTLS)
	}
	if !pol.Require || pol.Client == nil {
		switch {
		case n.kr != nil:
			modes = append(modes, exKey)
		case !pol.Require:
			modes = append(modes, exPlain)
		}
	}
	for i, m := range modes {
		gen, eps, err = n.pullMode(name, addr, m, timeout)
		if !errors.Is(err, errRefusedMode) || i == len(modes)-1 {
			break
		}
	}
	return gen, eps, err
}

func (n *Node) pullMode(name, addr string, mode byte, timeout time.Duration) (uint64, []spmesh.Endpoint, error) {
	c, err := n.tr.dial(addr, timeout)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{exMagic, mode}); err != nil {
		return 0, nil, err
	}
	var ack [1]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return 0, nil, err
	}
	if ack[0] != exOK {
		return 0, nil, fmt.Errorf("%w: %q", errRefusedMode, mode)
	}
	var rw io.ReadWriter = c
	var key []byte
	var keys [][]byte
	switch mode {
	case exTLS:
		cfg := n.cfg.TLS.Client.Clone()
		host, _, _ := net.SplitHostPort(addr)
		switch {
		case n.cfg.TLS.VerifyNode:
			cfg.ServerName = name
		case cfg.ServerName == "":
			cfg.ServerName = host
		}
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err != nil {
			return 0, nil, protoErr("TLS handshake: %v", err)
		}
		if n.cfg.TLS.VerifyNode {
			st := tc.ConnectionState()
			if len(st.PeerCertificates) == 0 || st.PeerCertificates[0].VerifyHostname(name) != nil {
				return 0, nil, protoErr("certificate does not name node %q", name)
			}
		}
		rw = tc
	case exKey:
		key, keys = n.kr.GetPrimaryKey(), n.kr.GetKeys()
	}
	challenge := make([]byte, 16)
	rand.Read(challenge)
	if err := writeFrame(rw, encodeRequest(n.cfg.Label, name, challenge), key, 'q'); err != nil {
		return 0, nil, err
	}
	b, err := readFrame(rw, maxResponseBytes, keys, 'r')
	if err != nil {
		return 0, nil, err
	}
	d := msgpack.NewDecoder(bytes.NewReader(b))
	echo, err := d.DecodeBytes()
	if err != nil || !bytes.Equal(echo, challenge) {
		return 0, nil, protoErr("response does not answer this request")
	}
	msg, err := d.DecodeString()
	if err != nil {
		return 0, nil, protoErr("malformed response")
	}
	if msg != "" {
		return 0, nil, protoErr("member refused: %s", msg)
	}
	node, gen, eps, err := decodeRecordsFrom(d, len(b))
	if err != nil {
		return 0, nil, protoErr("%v", err)
	}
	if node != name {
		return 0, nil, &recordsNameError{got: node, want: name}
	}
	return gen, eps, nil
}

// recordsNameError is a member answering with records in another's name.
type recordsNameError struct{ got, want string }

func (e *recordsNameError) Error() string {
	return fmt.Sprintf("records name node %q, but came from %q", e.got, e.want)
}

// prefixConn is a connection whose first bytes were read into r.
type prefixConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }
