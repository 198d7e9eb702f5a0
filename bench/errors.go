package bench

import "errors"

// ErrNoDocker is returned (wrapped) when no Docker engine answers.
var ErrNoDocker = errors.New("bench: no Docker engine")

// ErrNoImage is returned (wrapped) when the image is not present locally
// and no registry is used (see scripts/build-mariadb-image.sh).
var ErrNoImage = errors.New("bench: image not present")
