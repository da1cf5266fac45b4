package discovery_test

import "github.com/spmesh/spmesh/internal/netlab"

var childCommands = netlab.Commands{}
