//go:build wasip1

// The component-model glue a WIT binding generator would write: Go (wasip1)
// has none for this target, so it is written by hand, once, for the two
// exports of the `match-evaluate-plugin` world. Copy this file into a new
// plugin unchanged; write the logic in plugin.go.
//
// Canonical ABI, as the component calls the core module:
//   - arguments: each `string` is (pointer, length) into linear memory,
//     allocated beforehand through the exported `cabi_realloc`;
//   - `result<bool, string>` and `result<string, string>` return a pointer
//     to a 12-byte area: a discriminant byte at 0 (0 ok, 1 err), then the
//     payload at 4 (a bool byte, or a string's pointer and length).
//
// `cabi_realloc` must not use the Go heap: the adapter calls it before the Go
// runtime runs, and the collector may not run inside it. It bumps through a
// static arena, reset after every call (argument strings are copied into Go
// strings first), so one argument can be up to the arena's size.

package main

import "unsafe"

const arenaSize = 8 << 20

var (
	arena [arenaSize]byte
	top   uintptr
	// The return area and the returned string, alive until the next call.
	ret  [3]uint32
	keep string
)

//go:wasmexport cabi_realloc
func cabiRealloc(oldPtr, oldSize, align, newSize uint32) uint32 {
	start := (top + uintptr(align) - 1) &^ (uintptr(align) - 1)
	if start+uintptr(newSize) > arenaSize {
		return 0 // the host reports the trap: the argument is too large
	}
	top = start + uintptr(newSize)
	ptr := uintptr(unsafe.Pointer(&arena[0])) + start
	if oldPtr != 0 && oldSize != 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(ptr)), newSize), unsafe.Slice((*byte)(unsafe.Pointer(uintptr(oldPtr))), oldSize))
	}
	return uint32(ptr)
}

// argument copies a string argument out of the arena.
func argument(ptr, length uint32) string {
	if length == 0 {
		return ""
	}
	return string(unsafe.Slice((*byte)(unsafe.Pointer(uintptr(ptr))), length))
}

func returnString(disc uint32, s string) uint32 {
	keep = s
	ret[0] = disc
	ret[1] = uint32(uintptr(unsafe.Pointer(unsafe.StringData(keep))))
	ret[2] = uint32(len(keep))
	return uint32(uintptr(unsafe.Pointer(&ret[0])))
}

//go:wasmexport runhook:plugin/matcher@0.1.0#matches
func exportMatches(runPtr, runLen, configPtr, configLen uint32) uint32 {
	run, config := argument(runPtr, runLen), argument(configPtr, configLen)
	top = 0
	ok, err := Matches(run, config)
	if err != nil {
		return returnString(1, err.Error())
	}
	ret[0], ret[1] = 0, 0
	if ok {
		ret[1] = 1
	}
	return uint32(uintptr(unsafe.Pointer(&ret[0])))
}

//go:wasmexport runhook:plugin/evaluator@0.1.0#evaluate
func exportEvaluate(runPtr, runLen, configPtr, configLen uint32) uint32 {
	run, config := argument(runPtr, runLen), argument(configPtr, configLen)
	top = 0
	feedback, err := Evaluate(run, config)
	if err != nil {
		return returnString(1, err.Error())
	}
	return returnString(0, feedback)
}

func main() {}
