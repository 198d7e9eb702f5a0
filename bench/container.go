package bench

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// DefaultImage is the image `scripts/build-mariadb-image.sh` builds from
// Debian's packages. The official mariadb and mysql images work unchanged.
const DefaultImage = "hotrow/mariadb:10.11"

// containerPassword is the root password of bench containers; they are
// reachable on a loopback port only and live for one run.
const containerPassword = "hotrow-bench"

// durableArgs are the server arguments of DESIGN.md's durable settings,
// understood by the official images' entry points and by ours.
var durableArgs = []string{
	"--log-bin=binlog", "--binlog-format=ROW", "--binlog-row-image=FULL",
	"--binlog-row-metadata=FULL", "--server-id=1", "--sync-binlog=1",
	"--innodb-flush-log-at-trx-commit=1", "--max-connections=3000",
}

// Container is a database server running in a container.
type Container struct {
	// Addr is the host:port the server is published on.
	Addr string
	// User and Password are a superuser's (root) credentials.
	User, Password string
	// PID is the server's process id on this host (0 when Docker runs
	// elsewhere), for CPU accounting.
	PID int

	ctr testcontainers.Container
}

// CheckImage reports, without starting anything, whether Docker answers
// and image is present locally. With pull set a missing image is fine
// (it will be pulled from a registry).
func CheckImage(ctx context.Context, image string, pull bool) error {
	disableRyuk()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoDocker, err)
	}
	defer cli.Close()
	if _, err := cli.Info(ctx, client.InfoOptions{}); err != nil {
		return fmt.Errorf("%w: %v", ErrNoDocker, err)
	}
	if pull {
		return nil
	}
	if _, err := cli.ImageInspect(ctx, image); err != nil {
		return fmt.Errorf("%w: %s (build it with scripts/build-mariadb-image.sh, or pass a registry image with --pull): %v", ErrNoImage, image, err)
	}
	return nil
}

// StartContainer runs image with the durable settings, its port 3306
// published on a free host port, and returns once root can log in.
func StartContainer(ctx context.Context, image string, log *slog.Logger) (*Container, error) {
	disableRyuk()
	req := testcontainers.ContainerRequest{
		Image:        image,
		ExposedPorts: []string{"3306/tcp"},
		Env: map[string]string{
			"MARIADB_ROOT_PASSWORD": containerPassword,
			"MYSQL_ROOT_PASSWORD":   containerPassword,
		},
		Cmd: durableArgs,
		// Only the check inside the container: the address testcontainers
		// derives for the host is not always reachable (see waitLogin).
		WaitingFor: wait.ForListeningPort("3306/tcp").SkipExternalCheck().WithStartupTimeout(3 * time.Minute),
	}
	log.Info("starting database container", "image", image)
	ctr, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: req, Started: true, Logger: printfLogger{log},
	})
	if err != nil {
		if ctr != nil {
			_ = ctr.Terminate(context.Background())
		}
		return nil, fmt.Errorf("start container %s: %w", image, err)
	}
	c := &Container{User: "root", Password: containerPassword, ctr: ctr}
	if err := c.waitLogin(ctx); err != nil {
		_ = c.Terminate(context.Background())
		return nil, err
	}
	if st, err := ctr.State(ctx); err == nil && isServerProcess(st.Pid) {
		c.PID = st.Pid
	}
	log.Info("database container ready", "addr", c.Addr, "pid", c.PID)
	return c, nil
}

// DSN returns the superuser's DSN.
func (c *Container) DSN() string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = c.User, c.Password, "tcp", c.Addr
	return cfg.FormatDSN()
}

// Terminate removes the container.
func (c *Container) Terminate(ctx context.Context) error { return c.ctr.Terminate(ctx) }

// waitLogin polls until root logs in and sets Addr. The official images
// listen only after their first-start initialisation. Two addresses are
// tried: the one testcontainers derives (TESTCONTAINERS_HOST_OVERRIDE
// sets it), and the loopback one, for a client that runs on the Docker
// host itself although testcontainers believes it is inside a container
// (/.dockerenv) and names the bridge gateway.
func (c *Container) waitLogin(ctx context.Context) error {
	endpoint, err := c.ctr.PortEndpoint(ctx, "3306/tcp", "")
	if err != nil {
		return err
	}
	_, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return err
	}
	candidates := []string{endpoint, net.JoinHostPort("127.0.0.1", port)}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for _, addr := range candidates {
			c.Addr = addr
			if err = ping(ctx, c.DSN()); err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("database container: no login at %v: %w", candidates, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ping opens dsn and pings it once, within two seconds.
func ping(ctx context.Context, dsn string) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// isServerProcess reports whether pid is, on this host, a database server
// (the container's PID 1 is visible here when Docker runs locally).
func isServerProcess(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return false
	}
	comm := strings.TrimSpace(string(b))
	return comm == "mariadbd" || comm == "mysqld"
}

// printfLogger hands testcontainers' messages to slog at debug level.
type printfLogger struct{ log *slog.Logger }

func (l printfLogger) Printf(format string, args ...any) {
	l.log.Debug(strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "testcontainers")
}

// disableRyuk turns off testcontainers' reaper container unless the user
// chose otherwise: its image comes from a registry, which is not always
// reachable, and the bench terminates its containers itself.
func disableRyuk() {
	if _, set := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !set {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
}
