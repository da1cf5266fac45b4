package discovery

func (n *Node) setLastError(err error) {
	s := err.Error()
	n.lastErr.Store(&s)
}

// Stats are the node's counters, all cumulative since New.
type Stats struct {
	// EndpointsRefused counts endpoints advertised by other members that
	// this node did not list (so no socket wired through it dials them):
	// a scheme other than tcp://, tls+tcp://, ws://, wss:// (ipc:// and
	// inproc:// name things on the dialer's own host); a host that is not
	// an IP, not the member's own gossip IP and not in
	// Config.EndpointCIDRs; an unspecified, link-local (169.254.0.0/16,
	// fe80::/10), multicast or cloud metadata address; past
	// Config.MaxEndpointsPerMember or Config.MaxEndpointsPerService.
	EndpointsRefused uint64
	// RecordsRefused counts records refused because they did not come
	// from the node they name: a member answering a pull with another's
	// name, records sent in a message or a push/pull exchange (anyone
	// could relay or forge those), undecodable metadata.
	RecordsRefused uint64
	// MembersRefused counts alive messages refused for the member's gossip
	// address (unspecified, link-local, multicast, cloud metadata).
	MembersRefused uint64
	// HandshakeErrors counts records exchanges, pulled or served, that
	// failed to authenticate: TLS handshake, certificate not naming the
	// node (TLS.VerifyNode), gossip key, label, or a mode this node does
	// not accept (plaintext with a key or TLS.Require).
	HandshakeErrors uint64
	// PullErrors counts failed records pulls of any cause (including
	// members that stopped answering).
	PullErrors uint64
	// GossipRefused counts gossip refused: TCP streams from outside
	// Config.CIDRsAllowed (logged with the address), and what memberlist
	// discarded for a wrong label, a key that does not decrypt it, or an
	// address outside CIDRsAllowed (memberlist logs each with the peer's
	// address).
	GossipRefused uint64
	// DroppedEvents is [Node.DroppedEvents].
	DroppedEvents uint64
	// LastError describes the latest refusal or failure counted above.
	LastError string
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	st := Stats{
		EndpointsRefused: n.endpointsRefused.Load(),
		RecordsRefused:   n.recordsRefused.Load(),
		MembersRefused:   n.membersRefused.Load(),
		HandshakeErrors:  n.handshakeErrors.Load(),
		PullErrors:       n.pullErrors.Load(),
		GossipRefused:    n.gossipRefused.Load(),
		DroppedEvents:    n.dropped.Load(),
	}
	if p := n.lastErr.Load(); p != nil {
		st.LastError = *p
	}
	return st
}

// PullFailures returns, for every member whose latest records pull
// failed, why (keyed by member name). Such a member's services are not
// known here until a pull succeeds, so this is what to show a user who
// cannot find a service (Stats.LastError holds only the latest failure
// of any kind, and a refusal of someone else's pull overwrites it).
func (n *Node) PullFailures() map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var m map[string]string
	for name, p := range n.peers {
		if p.pullErr != "" {
			if m == nil {
				m = map[string]string{}
			}
			m[name] = p.pullErr
		}
	}
	return m
}

// EndpointsRefused is Stats().EndpointsRefused, for sockets that surface
// it in their own Stats without importing this package (a type assertion
// to interface{ EndpointsRefused() uint64 }).
func (n *Node) EndpointsRefused() uint64 { return n.endpointsRefused.Load() }
