{{- define "rpo.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "rpo.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "rpo.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rpo.serviceAccount" -}}
{{- default (include "rpo.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* What the operator does with the API, and nothing more. */}}
{{- define "rpo.rules" -}}
- apiGroups: [redispool.io]
  resources: [redispoolpolicies]
  verbs: [get, list, watch, patch]        # patch: consume the redispool.io/action annotation
- apiGroups: [redispool.io]
  resources: [redispoolpolicies/status]
  verbs: [patch]
- apiGroups: [redispool.io]
  resources: [redispoolpolicies/finalizers]
  verbs: [update]                         # the canary's owner reference blocks the policy's deletion
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, update, patch, delete]   # targets: patch replicas and env; canaries: all (update replaces an edited one)
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [list, watch]                    # an HPA that scales a target owns its replicas
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]                    # the Pods provider: canary pod IPs (a watch), a target's after a promotion (a list)
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]                            # spec.redis password, CA and client certificate, approval webhook URLs; never list or watch
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]                            # spec.redis.tlsOptions.caRef.configMap only
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}

{{/* The operator's cluster-wide settings file (--cluster-settings). */}}
{{- define "rpo.clusterSettings" -}}
freezeWindows: {{- toYaml .Values.clusterSettings.freezeWindows | nindent 2 }}
notifications: {{- toYaml .Values.clusterSettings.notifications | nindent 2 }}
{{- end -}}

{{/* "true" when there are cluster-wide settings to mount. */}}
{{- define "rpo.clusterSettingsOn" -}}
{{- if or .Values.clusterSettings.freezeWindows .Values.clusterSettings.notifications }}true{{ end -}}
{{- end -}}
