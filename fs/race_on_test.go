//go:build race

package fs

// raceEnabled: the race detector keeps shadow memory beside the heap, so
// the resident size says nothing about the program's own memory.
const raceEnabled = true
