//go:build !race

package discovery_test

const raceOn = false
