// Package deploy renders what runs an app and its NATS JetStream broker in
// production, from the app's YAML: Kubernetes manifests (a StatefulSet per
// broker, or values for the official NATS Helm chart, and a Deployment
// running `eventbus run`), or a DigitalOcean App Platform app spec.
//
// The broker modules drive the rendering through the fields the reference
// plugin named: deploy_target picks the platform, replicas the number of
// NATS servers, version the NATS release, jetstream the server's storage
// limits and limits the servers' CPU, memory and volume. Every object is
// built from the platform's own API types (k8s.io/api, godo), so a field
// the platform does not know cannot be written.
//
// ParseApp reads an app YAML; Render turns it into files for one target.
// Render reads no environment and writes nothing: the caller decides where
// the files go.
package deploy
