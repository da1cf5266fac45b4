package pubsub

import "context"

// WaitPeers waits until at least n subscribers are connected, the socket
// closes (spmesh.ErrClosed) or ctx ends (ctx's error, wrapped with the
// number connected and the last connection error). It waits on connection
// events; it does not poll.
//
// What it guarantees: each of those n connections is in the publisher's
// fan-out, so every message published after WaitPeers returns is queued
// for each of them and reaches each subscriber unless it is dropped
// (counted on one side or the other) or the connection breaks, and the
// subscriber delivers it if it is subscribed to the topic when the message
// arrives. Subscriptions given at the subscriber's construction
// ([WithSubscribe]) hold from the start of the connection, at the
// publisher too; a later Subscribe reaches the publisher's filter about a
// round trip after it returns (see the package doc, "Topics"). This is the
// side to wait on before publishing.
func (p *Publisher) WaitPeers(ctx context.Context, n int) error {
	return p.so.WaitPeers(ctx, n)
}

// WaitPeers waits until at least n publishers are connected, the socket
// closes (spmesh.ErrClosed) or ctx ends (ctx's error, wrapped with the
// number connected and the last connection error). It waits on connection
// events; it does not poll.
//
// What it guarantees: the subscriber's side of n connections is up, and
// its subscriptions are in effect for every frame read from them. The publisher's side of a connection completes its handshake at
// about the same moment but not necessarily before: a message published
// at the very moment this returns may miss this subscriber. A program
// that must know that a message published now is delivered waits on the
// [Publisher] side ([Publisher.WaitPeers]).
func (s *Subscriber) WaitPeers(ctx context.Context, n int) error {
	return s.so.WaitPeers(ctx, n)
}
