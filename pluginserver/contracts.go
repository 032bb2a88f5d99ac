package pluginserver

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/wfeventbus/eventbus/eventbus"
	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// contractMode is the mode of every contract: the host sends the Struct
// config always and the typed one when it encodes, so a template in a number
// or boolean field never breaks an app.
const contractMode = pluginv1.ContractMode_CONTRACT_MODE_PROTO_WITH_LEGACY_STRUCT

// Contracts returns the typed contract of every module, step and trigger,
// with a FileDescriptorSet that resolves every message it names on its own.
func Contracts() *pluginv1.ContractRegistry {
	var (
		contracts []*pluginv1.ContractDescriptor
		messages  []proto.Message
	)
	module := func(typ string, cfg proto.Message) {
		contracts = append(contracts, &pluginv1.ContractDescriptor{
			Kind:          pluginv1.ContractKind_CONTRACT_KIND_MODULE,
			ModuleType:    typ,
			ConfigMessage: fullName(cfg),
			Mode:          contractMode,
		})
		messages = append(messages, cfg)
	}
	step := func(typ string, cfg, input proto.Message) {
		contracts = append(contracts, &pluginv1.ContractDescriptor{
			Kind:          pluginv1.ContractKind_CONTRACT_KIND_STEP,
			StepType:      typ,
			ConfigMessage: fullName(cfg),
			InputMessage:  fullName(input),
			Mode:          contractMode,
		})
		messages = append(messages, cfg, input)
	}
	module(eventbus.TypeBroker, &eventbusv1.BrokerConfig{})
	module(eventbus.TypeStream, &eventbusv1.StreamConfig{})
	module(eventbus.TypeConsumer, &eventbusv1.ConsumerConfig{})
	module(eventbus.TypeBrokerAlias, &eventbusv1.BrokerConfig{})
	module(eventbus.TypeStreamAlias, &eventbusv1.StreamConfig{})
	module(eventbus.TypeConsumerAlias, &eventbusv1.ConsumerConfig{})
	step(eventbus.StepPublish, &eventbusv1.PublishStepConfig{}, &emptypb.Empty{})
	step(eventbus.StepConsume, &eventbusv1.ConsumeStepConfig{}, &emptypb.Empty{})
	for _, typ := range []string{eventbus.StepAck, eventbus.StepNak, eventbus.StepTerm, eventbus.StepInProgress} {
		step(typ, &eventbusv1.SettleStepConfig{}, &eventbusv1.SettleStepInput{})
	}
	trigger := &eventbusv1.SubscribeTriggerConfig{}
	contracts = append(contracts, &pluginv1.ContractDescriptor{
		Kind:          pluginv1.ContractKind_CONTRACT_KIND_TRIGGER,
		TriggerType:   eventbus.TriggerSubscribe,
		ConfigMessage: fullName(trigger),
		Mode:          contractMode,
	})
	messages = append(messages, trigger)
	return &pluginv1.ContractRegistry{Contracts: contracts, FileDescriptorSet: descriptorSet(messages)}
}

func fullName(m proto.Message) string { return string(m.ProtoReflect().Descriptor().FullName()) }

// descriptorSet holds the files that declare msgs and every file they import.
func descriptorSet(msgs []proto.Message) *descriptorpb.FileDescriptorSet {
	files := make([]protoreflect.FileDescriptor, len(msgs))
	for i, m := range msgs {
		files[i] = m.ProtoReflect().Descriptor().ParentFile()
	}
	return wfplugin.FileDescriptorSet(files...)
}
