package keyring

import (
	"fmt"
	"os"
)

// available refuses early when there is no session bus to talk to: without
// one, godbus would exec dbus-launch and leave a stray daemon behind, and the
// call would still fail on a locked keyring.
func available() error {
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		return nil
	}
	if _, err := os.Stat(fmt.Sprintf("/run/user/%d/bus", os.Getuid())); err == nil {
		return nil
	}
	return fmt.Errorf("%w: no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)", ErrUnavailable)
}
