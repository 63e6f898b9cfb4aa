module mqttdemo/bench

go 1.25.0

require (
	github.com/mochi-mqtt/server/v2 v2.7.9
	mqttdemo/mqttserver v0.0.0
)

replace (
	mqttdemo/mqttserver => ../../mqttserver
	mqttdemo/shared => ../../shared
)

require (
	github.com/fatih/color v1.19.0 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.24 // indirect
	github.com/rs/xid v1.4.0 // indirect
	go.etcd.io/bbolt v1.4.3 // indirect
	golang.org/x/crypto v0.42.0 // indirect
	golang.org/x/sys v0.42.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
	mqttdemo/shared v0.0.0 // indirect
)
