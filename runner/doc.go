// Package runner is the standalone host of eventbus pipelines: it reads an
// app config in the workflow engine's shape, validates it against what a
// plugin declares, drives the plugin through the engine's lifecycle and
// runs a pipeline each time a trigger fires.
//
// The app config is the engine's YAML:
//
//	modules:
//	  - name: bus
//	    type: eventbus.broker
//	pipelines:
//	  orders:
//	    trigger:
//	      type: trigger.eventbus.subscribe
//	      config: { name: orders-worker, broker_ref: bus }
//	    steps:
//	      - name: log
//	        type: step.log
//	        config: { message: "order {{ .trigger.payload.id }}" }
//
// Load and Parse read it (with ${VAR} and ${VAR:-default} expanded in
// string values) and report every structural problem with file, line and
// field; Validate checks it against a Catalog (the plugin's type lists and
// typed contracts plus the built-in steps step.log, step.set and
// step.fail). Check and CheckFile do both in one pass, so that every
// problem of a file is reported at once.
//
// A Runner drives a Plugin, the small interface through which it reaches a
// plugin process: New validates the config, Start creates and starts
// modules, steps and triggers in the engine's order, TriggerWorkflow runs
// a pipeline to completion (the plugin's triggers call it), and Stop stops
// triggers, lets in-flight runs finish and stops modules in reverse.
//
// Pipelines behave as in the engine: each step's config is rendered with
// Go text/template against {{ .trigger.X }}, {{ .steps.NAME.X }}, the
// merged current data at the top level and {{ .meta.pipeline }}; rendered
// values are always strings; each step's output is merged into the
// current data and kept under steps.NAME.
package runner
