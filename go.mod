module github.com/spmesh/spmesh

go 1.26

require (
	github.com/vmihailenco/msgpack/v5 v5.4.1
	go.nanomsg.org/mangos/v3 v3.4.2
	go.uber.org/goleak v1.3.0
)

require (
	github.com/Microsoft/go-winio v0.6.2 // indirect
	github.com/gorilla/websocket v1.5.0 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
)
