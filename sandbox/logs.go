package sandbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/docker/docker/api/types/container"
)

// copyLogs follows the container's output, demultiplexed, with secrets masked per stream.
// The engine may end a followed stream when the container exits before it has sent the last
// lines (seen with Docker 20.10 and an agent that writes fast right up to its exit), so once
// the stream ends the lines after the last one received are read once more, by timestamp.
func (d *Docker) copyLogs(ctx context.Context, h *Handle, logs io.Writer) {
	var out, errw io.Writer = logs, logs
	var flush []*MaskingWriter
	if len(h.secrets) > 0 {
		mo, me := NewMaskingWriter(logs, h.secrets), NewMaskingWriter(logs, h.secrets)
		out, errw, flush = mo, me, []*MaskingWriter{mo, me}
	}
	last, err := d.readLogs(ctx, h, out, errw, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true, Timestamps: true}, time.Time{})
	if err != nil && ctx.Err() == nil {
		d.log.WarnContext(ctx, "follow container logs", "run_id", h.Spec.RunID, "job", h.Spec.JobID, "err", CleanDockerError(err))
	}
	if ctx.Err() == nil {
		rest := container.LogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true}
		if !last.IsZero() {
			rest.Since = fmt.Sprintf("%d.%09d", last.Unix(), last.Nanosecond())
		}
		if _, err := d.readLogs(ctx, h, out, errw, rest, last); err != nil && ctx.Err() == nil {
			d.log.WarnContext(ctx, "read the rest of the container's logs", "run_id", h.Spec.RunID, "job", h.Spec.JobID, "err", CleanDockerError(err))
		}
	}
	for _, m := range flush {
		_ = m.Flush()
	}
}

// readLogs copies the engine's multiplexed log stream (8-byte frame headers: the stream, then
// the length) to out and errw, each frame without the timestamp the engine put first; frames
// stamped no later than after are skipped. It returns the last timestamp copied.
func (d *Docker) readLogs(ctx context.Context, h *Handle, out, errw io.Writer, opts container.LogsOptions, after time.Time) (time.Time, error) {
	rc, err := d.cli.ContainerLogs(ctx, h.ID, opts)
	if err != nil {
		return after, err
	}
	defer rc.Close()
	last := after
	var hdr [8]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(rc, hdr[:]); err != nil {
			if err == io.EOF {
				return last, nil
			}
			return last, err
		}
		size := int(binary.BigEndian.Uint32(hdr[4:]))
		if cap(buf) < size {
			buf = make([]byte, size)
		}
		frame := buf[:size]
		if _, err := io.ReadFull(rc, frame); err != nil {
			return last, err
		}
		if sp := bytes.IndexByte(frame, ' '); sp > 0 {
			if ts, err := time.Parse(time.RFC3339Nano, string(frame[:sp])); err == nil {
				if !after.IsZero() && !ts.After(after) {
					continue
				}
				last, frame = ts, frame[sp+1:]
			}
		}
		w := out
		if hdr[0] == 2 {
			w = errw
		}
		if _, err := w.Write(frame); err != nil {
			return last, err
		}
	}
}
