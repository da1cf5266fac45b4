//go:build race

package discovery_test

// raceOn is whether the race detector is on: it makes memberlist about
// ten times costlier, so the tests with many in-process nodes use fewer.
const raceOn = true
