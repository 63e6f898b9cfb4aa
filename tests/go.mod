module mqttdemo/tests

go 1.25.0

replace (
	mqttdemo/mqttpublisher => ../mqttpublisher
	mqttdemo/mqttserver => ../mqttserver
	mqttdemo/mqttsubscriber => ../mqttsubscriber
	mqttdemo/shared => ../shared
)

require (
	github.com/creack/pty v1.1.24
	github.com/eclipse/paho.mqtt.golang v1.5.1
	github.com/gorilla/websocket v1.5.3
	github.com/mochi-mqtt/server/v2 v2.7.9
	golang.org/x/sys v0.42.0
	mqttdemo/mqttpublisher v0.0.0
	mqttdemo/mqttserver v0.0.0
	mqttdemo/mqttsubscriber v0.0.0
)

require (
	github.com/fatih/color v1.19.0 // indirect
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.24 // indirect
	github.com/rs/xid v1.4.0 // indirect
	go.etcd.io/bbolt v1.4.3 // indirect
	golang.org/x/crypto v0.42.0 // indirect
	golang.org/x/net v0.44.0 // indirect
	golang.org/x/sync v0.17.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
	mqttdemo/shared v0.0.0 // indirect
)
