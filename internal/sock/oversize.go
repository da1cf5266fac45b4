package sock

// OversizeFrame is called for a received frame over the receive limit from
// a peer of protocol peerProto (an SP protocol number) that has a reply
// channel; prefix holds its first bytes (hostile input: validate before
// use), size its claimed length. The transport already read and discarded
// the frame and counted it (TooLarge, Dropped). A non-nil result is
// delivered to the socket in place of the frame, as if it had come from
// the peer; nil drops the frame.
func (so *Socket) OversizeFrame(peerProto uint16, prefix []byte, size uint64) []byte {
	return nil
}
