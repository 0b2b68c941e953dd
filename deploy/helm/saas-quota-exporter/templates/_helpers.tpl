{{/*
The chart's name, or nameOverride; 63 characters at most (a DNS label).
*/}}
{{- define "saas-quota-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every object: fullnameOverride, else the release name when it
already contains the chart name, else "<release>-<chart>"; 63 characters at most.
*/}}
{{- define "saas-quota-exporter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "saas-quota-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The namespace of every object: namespaceOverride, else the release namespace.
*/}}
{{- define "saas-quota-exporter.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "saas-quota-exporter.labels" -}}
helm.sh/chart: {{ include "saas-quota-exporter.chart" . }}
{{ include "saas-quota-exporter.selectorLabels" . }}
app.kubernetes.io/component: exporter
app.kubernetes.io/part-of: saas-quota-exporter
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the exporter's pods (Deployment and Service selectors).
*/}}
{{- define "saas-quota-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "saas-quota-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the pod runs as.
*/}}
{{- define "saas-quota-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "saas-quota-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Secret whose keys are mounted as the API key files.
*/}}
{{- define "saas-quota-exporter.secretName" -}}
{{- default (printf "%s-keys" (include "saas-quota-exporter.fullname" .)) .Values.apiKeys.existingSecret }}
{{- end }}

{{/*
The container image: [registry/]repository:tag, the tag defaulting to appVersion.
*/}}
{{- define "saas-quota-exporter.image" -}}
{{- $repository := .Values.image.repository }}
{{- if .Values.image.registry }}
{{- $repository = printf "%s/%s" .Values.image.registry .Values.image.repository }}
{{- end }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Where the API keys Secret is mounted; the config's api_key_file paths point here.
*/}}
{{- define "saas-quota-exporter.keyDir" -}}
/run/secrets/saas-quota-exporter
{{- end }}

{{/*
Where the config ConfigMap is mounted.
*/}}
{{- define "saas-quota-exporter.configDir" -}}
/etc/saas-quota-exporter
{{- end }}
