package discovery

import (
	"fmt"

	"github.com/hashicorp/memberlist"
	"github.com/spmesh/spmesh"
)

// InstallKey adds a gossip key to the keyring (accepted for decryption, not
// yet used to encrypt). Rotation: InstallKey on every node, then UseKey on
// every node, then RemoveKey of the old key on every node. The keyring is
// this node's only: spread it to every node yourself.
func (n *Node) InstallKey(key []byte) error {
	return n.keyring(func(kr *memberlist.Keyring) error { return kr.AddKey(key) }, key)
}

// UseKey makes an installed key the one used to encrypt.
func (n *Node) UseKey(key []byte) error {
	return n.keyring(func(kr *memberlist.Keyring) error { return kr.UseKey(key) }, key)
}

// RemoveKey removes a key other than the one in use.
func (n *Node) RemoveKey(key []byte) error {
	return n.keyring(func(kr *memberlist.Keyring) error { return kr.RemoveKey(key) }, key)
}

// Keys returns the installed keys, the one in use first; nil without
// encryption.
func (n *Node) Keys() [][]byte {
	if n.kr == nil || n.isClosed() {
		return nil
	}
	return n.kr.GetKeys()
}

func (n *Node) keyring(f func(*memberlist.Keyring) error, key []byte) error {
	if n.isClosed() {
		return spmesh.ErrClosed
	}
	if !validKey(key) {
		return fmt.Errorf("%w: discovery: gossip key of %d bytes: want 16, 24 or 32", spmesh.ErrInvalidOption, len(key))
	}
	kr := n.kr // memberlist encrypts with this very keyring
	if kr == nil {
		return fmt.Errorf("%w: discovery: encryption was not enabled at start (Config.SecretKey)", spmesh.ErrInvalidOption)
	}
	if err := f(kr); err != nil {
		return fmt.Errorf("%w: discovery: keyring: %v", spmesh.ErrInvalidOption, err)
	}
	return nil
}
