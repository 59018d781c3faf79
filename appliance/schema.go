package appliance

import "github.com/sealpost/sealpost/appliance/store"

// migrations bring the store from any older schema to the current one. They
// run in order at start-up; append, never edit or reorder.
var migrations = []store.Migration{
	{Version: 1, Name: "initial schema", Apply: func(*store.Tx) error { return nil }},
}
