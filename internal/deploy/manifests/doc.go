// Package manifests holds the offline checks of the files in deploy/: it
// has no code of its own, only tests, so that their heavy dependencies
// (kustomize, the Kubernetes API types, compose-go) stay out of the
// wardstream binary. Nothing here needs a cluster, a Docker engine or the
// network.
//
// What the tests validate (see manifests_test.go; deploy/README.md repeats
// this list for operators):
//
//   - Kustomize: the base and every overlay of deploy/k8s build with the
//     kustomize API (sigs.k8s.io/kustomize/api/krusty), as `kubectl apply -k`
//     would build them.
//   - Kubernetes kinds (Deployment, Job, Service, ServiceAccount, ConfigMap,
//     Secret, PodDisruptionBudget, NetworkPolicy) decode strictly into the
//     k8s.io/api types: an unknown or misspelled field, or a value of the
//     wrong type, fails. This is the structural part of what kubeconform
//     checks against the OpenAPI schemas.
//   - Operator kinds (Strimzi Kafka, KafkaNodePool, KafkaTopic, KafkaUser;
//     KEDA ScaledObject, TriggerAuthentication; cert-manager Issuer,
//     Certificate; Altinity ClickHouseInstallation,
//     ClickHouseKeeperInstallation) decode strictly into minimal Go structs
//     that list exactly the fields we use, with their JSON types; embedded
//     pod, volume-claim and service templates decode into the k8s.io/api
//     types. This is narrower than the operators' CRD schemas (we cannot
//     fetch them offline): it proves our fields are spelled and typed as we
//     believe the CRDs define them, not that the CRDs accept every value.
//   - Cross-references in the built output: selectors of Deployments, PDBs
//     and NetworkPolicies select pods that exist; probes use /healthz and
//     /readyz on the container port the topology's telemetry.listen names;
//     every ConfigMap and Secret a pod, TriggerAuthentication or
//     ClickHouseInstallation references is built here or is one that an
//     operator (Strimzi, cert-manager) or the operator's runbook creates;
//     ScaledObjects target existing Deployments, read lag of catalog
//     consumer groups at the topology's bootstrap servers, and agree with
//     the topology's scaling hints; KafkaTopics equal
//     `wardstream topics manifest` for the overlay's topology; replication
//     factors fit the broker count; the ClickHouse cluster name, address
//     and TLS files of the topology match the ClickHouseInstallation and
//     the mounted volumes.
//   - Compose: deploy/compose/compose.yaml loads with compose-go (the
//     compose-spec JSON schema, interpolation, merge keys), has the services
//     the stack promises, mounts files that exist, and its topology
//     validates.
//   - Dockerfile: deploy/docker/Dockerfile has a cgo build stage and a slim
//     runtime stage, fetches ONNX Runtime with deploy/local/onnxruntime.sh
//     (so the pinned version and checksum have one home), and copies only
//     paths that exist.
package manifests
