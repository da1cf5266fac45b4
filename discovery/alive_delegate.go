package discovery

import (
	"fmt"
	"log/slog"

	"github.com/hashicorp/memberlist"
	"github.com/spmesh/spmesh/internal/logx"
)

// NotifyAlive implements memberlist.AliveDelegate: a member whose gossip
// address no member may point others at (unspecified, link-local,
// multicast, cloud metadata) is refused, so this node never probes it or
// exchanges state with it.
func (a *mlAlive) NotifyAlive(nd *memberlist.Node) error {
	n := (*Node)(a)
	if nd.Name == n.name {
		return nil
	}
	if err := checkGossipAddr(nd.Addr, nd.Port); err != nil {
		n.membersRefused.Add(1)
		n.setLastError(fmt.Errorf("member %s at %s refused: %v", nd.Name, nodeAddr(nd), err))
		n.logs.Log(n.log, slog.LevelWarn, nodeAddr(nd), "spmesh: discovery: member refused",
			logx.Node, nd.Name, logx.Remote, nodeAddr(nd), logx.Reason, err)
		return err
	}
	return nil
}
