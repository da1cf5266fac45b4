// Package sptcp is spmesh's SP-over-TCP transport for mangos: the standard
// wire format, so NNG, nanomsg and stock mangos peers interoperate, with
// coalesced writes and buffered reads.
//
// Traps first:
//   - Send returns once the frame is copied into the pipe's write buffer,
//     not once it is in the kernel. A frame accepted by Send is lost if the
//     connection fails before the flusher writes it (as with any TCP
//     transport, bytes in flight are lost anyway).
//   - Send blocks while the pipe has [HighWater] bytes or more waiting to
//     be written (a peer that does not read pushes back on the sender), until
//     the flusher drains them or the pipe closes.
//   - Close writes what is still buffered for at most [CloseLinger], then
//     closes the connection: a peer that does not read loses the rest.
//   - A frame whose length prefix exceeds the receive limit
//     (mangos.OptionMaxRecvSize; 0 means none) closes the pipe; nothing of
//     the claimed size is allocated. Without a limit, memory grows only with
//     the bytes that actually arrive.
//   - Connecting plus the SP handshake must finish within
//     [HandshakeTimeout], or the connection is dropped (a dialer retries).
//   - Recv must not be called by two goroutines at once on one pipe (mangos
//     never does); Send may be.
//
// Wire format (the SP/TCP mapping, unchanged): each side first sends 8 bytes
// 0x00 'S' 'P' 0x00, its 16-bit big-endian protocol id and two zero bytes,
// and checks the peer's: the peer's protocol must be the one this socket
// talks to. Then each message is a 64-bit big-endian length followed by that
// many bytes: the mangos message Header, then its Body.
//
// How it batches: Send appends the frame to a buffer and, if the flusher
// goroutine is idle, wakes it; while the flusher is in a write system call,
// further frames accumulate and go out together in its next write. Before
// it takes a batch of under 16 KiB, the flusher gives way once
// (runtime.Gosched) when more frames are likely: a Send queued behind a
// waiting frame or a write in progress, or the last give-way gained frames
// (a worker acking jobs read in one go, a producer refilling its window
// from those acks: one write carries several frames). A lone message on a
// quiet pipe is written at once but for a probe: the flusher gives way on
// one wake-up in 65 (the gap between probes doubles from 1 to 64 while they
// gain nothing). Giving way costs about 0.1-0.3 µs when nothing else is
// runnable; goroutines that are runnable go first. Bodies of
// [RefThreshold] bytes or more are not copied: they go out by reference in
// a vectored write. Reads go through a buffer that grows from
// [MinReadBuffer] to [ReadBuffer] bytes while reads fill it (one read
// system call yields many small frames) and shrinks back, halving at most
// once a second, when the pipe goes quiet; write buffers larger than
// [KeepWriteBuffer] are dropped after a burst. An idle pipe holds about 8
// KiB. A received body is allocated at once when it is at most 64 KiB
// beyond the bytes already buffered, else it grows as its bytes arrive.
//
// Schemes: importing the package registers [Transport] under "sptcp" and
// [TLSTransport] under "sptls+tcp" (TLS configured with
// mangos.OptionTLSConfig on the dialer or listener). The stock "tcp" and
// "tls+tcp" transports stay available in the same process. Addresses are
// those of the stock transports with the scheme swapped: [Addr] maps
// "tcp://h:p" to "sptcp://h:p" (and "tls+tcp://" to "sptls+tcp://"), and
// [PublicAddr] maps back.
package sptcp
