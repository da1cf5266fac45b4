package sock

// NewBareInbox starts reading so for bare frames (WithBareFrames): each
// frame's body is one message, with no envelope to decode, so no frame is
// a decode error. convert turns the body into a message (it may keep it),
// or reports false to skip it. A frame over Settings.MaxMsgSize that the
// transport let through (inproc://) is dropped and counted in TooLarge and
// Dropped (DroppedTooLarge). Bodies are copied out of pooled buffers as in NewInbox.
func NewBareInbox[T any](so *Socket, convert func(body []byte) (T, bool)) *Inbox[T] {
	var slab []byte
	max := so.Settings.MaxMsgSize
	return NewFrameInbox(so, func(m *Frame, emit func(T) bool) error {
		if len(m.Body) > max {
			m.Free()
			so.C.TooLarge.Add(1)
			so.C.Drop(1, &so.C.DroppedTooLarge)
			return nil
		}
		body := m.Body
		if Pooled(m) {
			body = copyBody(&slab, body)
			m.Free()
		}
		if v, ok := convert(body); ok {
			emit(v)
		}
		return nil
	})
}
