// Package layer lets a pattern package built on another reach what that
// one does not export: the pipeline's Producer and Worker ride on reqrep's
// engine, with their own frames (jobs and acks) and pre-encoded bodies,
// without reqrep offering those knobs to its users. reqrep sets the hooks
// in its init; only spmesh's own packages can import this one.
package layer

// ReqrepWorker returns a reqrep.Option (as any) that makes a Requester or
// Replier a pipeline Producer or Worker: role spmesh.RoleWorker in
// discovery, jobs and acks on the wire.
var ReqrepWorker func() any

// ReqrepPeers returns the number of connections of a *reqrep.Requester
// (given as any), without building its Stats.
var ReqrepPeers func(rq any) int

// ReqrepCallData sets the already-encoded body of a *reqrep.Call (given as
// any): it is sent as is, and the call's Body is ignored.
var ReqrepCallData func(call any, data []byte)
