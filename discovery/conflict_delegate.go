package discovery

import (
	"log/slog"

	"github.com/hashicorp/memberlist"
	"github.com/spmesh/spmesh/internal/logx"
)

// NotifyConflict logs a name claimed from two addresses (a restart before
// the old incarnation was declared dead, or a duplicate name).
func (c *mlConflict) NotifyConflict(existing, other *memberlist.Node) {
	n := (*Node)(c)
	n.logs.Log(n.log, slog.LevelWarn, existing.Name, "spmesh: discovery: node name claimed by two addresses; the newcomer is accepted once the old one is declared dead",
		logx.Node, existing.Name, "existing", nodeAddr(existing), "other", nodeAddr(other))
}
