package wfplugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
)

// WorkflowHandler runs the workflow a plugin trigger fires and returns when
// it has finished, as the engine does. workflowType is the name the trigger
// was created with (for example "pipeline:orders"); data is the trigger
// data, with numbers as float64. A returned error is answered to the plugin
// in ErrorResponse.error.
type WorkflowHandler func(ctx context.Context, workflowType, action string, data map[string]any) error

// LogHandler receives the records a plugin sends with the Log callback.
type LogHandler func(ctx context.Context, level, message string, fields map[string]any)

// callbackServer is the host's EngineCallbackService, with the answers of
// the engine's stock server for what it does not wire.
type callbackServer struct {
	pluginv1.UnimplementedEngineCallbackServiceServer

	log      *slog.Logger
	workflow WorkflowHandler
	logs     LogHandler
}

func (s *callbackServer) TriggerWorkflow(ctx context.Context, req *pluginv1.TriggerWorkflowRequest) (*pluginv1.ErrorResponse, error) {
	return &pluginv1.ErrorResponse{Error: s.runWorkflow(ctx, req.GetTriggerType(), req.GetAction(), FromStruct(req.GetData()))}, nil
}

// runWorkflow runs the workflow handler, recovering a panic, and returns
// the text of its failure ("" when it succeeded).
func (s *callbackServer) runWorkflow(ctx context.Context, workflowType, action string, data map[string]any) string {
	if s.workflow == nil {
		return "no handler found for workflow type: " + workflowType
	}
	err := safely(s.log, "TriggerWorkflow", workflowType, func() error {
		return s.workflow(ctx, workflowType, action, data)
	})
	if err != nil {
		return err.Error()
	}
	return ""
}

func (s *callbackServer) GetService(context.Context, *pluginv1.GetServiceRequest) (*pluginv1.GetServiceResponse, error) {
	return &pluginv1.GetServiceResponse{Found: false}, nil
}

func (s *callbackServer) Log(ctx context.Context, req *pluginv1.LogRequest) (*emptypb.Empty, error) {
	fields := FromStruct(req.GetFields())
	if s.logs != nil {
		_ = safely(s.log, "Log", "", func() error {
			s.logs(ctx, req.GetLevel(), req.GetMessage(), fields)
			return nil
		})
		return &emptypb.Empty{}, nil
	}
	attrs := make([]any, 0, 2*len(fields)+2)
	attrs = append(attrs, "source", "callback")
	for k, v := range fields {
		attrs = append(attrs, k, v)
	}
	s.log.Log(ctx, levelOf(req.GetLevel()), req.GetMessage(), attrs...)
	return &emptypb.Empty{}, nil
}

func (s *callbackServer) PublishMessage(context.Context, *pluginv1.PublishMessageRequest) (*pluginv1.PublishMessageResponse, error) {
	return &pluginv1.PublishMessageResponse{Error: "message publish handler not configured"}, nil
}

func (s *callbackServer) Subscribe(context.Context, *pluginv1.SubscribeRequest) (*pluginv1.ErrorResponse, error) {
	return &pluginv1.ErrorResponse{Error: "message subscribe handler not configured"}, nil
}

func (s *callbackServer) Unsubscribe(_ context.Context, req *pluginv1.UnsubscribeRequest) (*pluginv1.ErrorResponse, error) {
	return &pluginv1.ErrorResponse{Error: fmt.Sprintf("no subscription found for handle %q and topic %q", req.GetHandleId(), req.GetTopic())}, nil
}

func levelOf(level string) slog.Level {
	switch strings.ToLower(level) {
	case "debug", "trace":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error", "fatal":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// hostPlugin is the host's side of the go-plugin plugin: when dispensed it
// reserves a broker id and serves the callback service on it.
type hostPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	callbacks *callbackServer
	// maxRecv is the callback server's receive limit; 0 keeps gRPC's.
	maxRecv int

	wg sync.WaitGroup
}

// dispensed is what hostPlugin.GRPCClient returns.
type dispensed struct {
	rpc      pluginv1.PluginServiceClient
	brokerID uint32
}

func (h *hostPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("wfplugin: the host side serves no plugin")
}

func (h *hostPlugin) GRPCClient(_ context.Context, b *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	id := b.NextId()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		// Unless WithMaxMessageSize raises it, the callback server keeps
		// gRPC's default 4 MiB receive limit, as the engine's does, so
		// oversized trigger data fails here too.
		b.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, serverTuning()...)
			if h.maxRecv > 0 {
				opts = append(opts, grpc.MaxRecvMsgSize(h.maxRecv))
			}
			s := grpc.NewServer(opts...)
			pluginv1.RegisterEngineCallbackServiceServer(s, h.callbacks)
			return s
		})
	}()
	return &dispensed{rpc: pluginv1.NewPluginServiceClient(cc), brokerID: id}, nil
}

// wait returns once the callback server has stopped (the broker closes
// with the go-plugin client) or ctx ends.
func (h *hostPlugin) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
