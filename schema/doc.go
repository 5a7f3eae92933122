// Package schema holds what every part of Mayfly and every client agree on:
// the wire types of the HTTP and WebSocket APIs, the closed set of error codes
// clients see, and the rules for handles and identifiers.
//
// It imports no other package of this module, so clients, servers and tests
// can all depend on it. Everything in it is safe for concurrent use: it holds
// no mutable state.
package schema
