package jetstream_test

import (
	"testing"

	"github.com/wfeventbus/eventbus/bus"
)

func TestSmoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.stream(t, "SMOKE", bus.StreamConfig{})
	c := e.consumer(t, s, "c", bus.ConsumerConfig{})
	e.publish(t, "SMOKE.a", "hello")
	msgs := e.fetchN(t, s, c, 1)
	t.Logf("%+v", *msgs[0])
	if err := e.bus.Ack(testContext(t), msgs[0].AckToken); err != nil {
		t.Fatal(err)
	}
	if err := e.bus.Ack(testContext(t), msgs[0].AckToken); err == nil {
		t.Fatal("second ack ok")
	} else {
		t.Log(err)
	}
}
