package forwarder

import (
	"slices"
)

// sinkTypes are the sink types a configuration may name.
var sinkTypes = map[string]sinkType{
	"files":         {check: strictSettings[FilesConfig](), open: openFiles},
	"kafka":         {check: strictSettings[KafkaConfig](), open: openKafka},
	"syslog":        {check: strictSettings[SyslogConfig](), open: openSyslog},
	"splunk":        {check: strictSettings[SplunkConfig](), open: openSplunk},
	"elasticsearch": {check: strictSettings[ElasticConfig](), open: openElastic},
	"sentinel":      {check: strictSettings[SentinelConfig](), open: openSentinel},
	"securitylake":  {check: strictSettings[SecurityLakeConfig](), open: openSecurityLake},
}

func sortedTypes() []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range sinkTypes {
			if !yield(k) {
				return
			}
		}
	})
}
