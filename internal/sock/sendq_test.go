package sock

import "testing"

func TestServerSendQueue(t *testing.T) {
	for _, c := range []struct {
		queueBytes, maxMsg, sendQueue, want int
	}{
		{DefaultQueueBytes, DefaultMaxMsgSize, DefaultQueue, ServerQueueFloor}, // 16 MiB / 8 MiB: the floor
		{DefaultQueueBytes, 64 << 10, DefaultQueue, 256},                       // small messages: QueueBytes worth
		{DefaultQueueBytes, 1 << 10, DefaultQueue, DefaultQueue},               // at most WithQueueLen
		{DefaultQueueBytes, DefaultMaxMsgSize, 2, 2},                           // WithQueueLen below the floor
		{4 << 10, 0, 4, 4},
	} {
		s := DefaultSettings()
		s.QueueBytes, s.MaxMsgSize, s.SendQueue = c.queueBytes, c.maxMsg, c.sendQueue
		if got := ServerSendQueue(s); got != c.want {
			t.Errorf("ServerSendQueue(QueueBytes %d, MaxMsgSize %d, SendQueue %d) = %d, want %d",
				c.queueBytes, c.maxMsg, c.sendQueue, got, c.want)
		}
	}
}
