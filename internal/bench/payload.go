package bench

import (
	"strconv"
	"strings"
)

// payload is a JSON object of exactly size bytes carrying sendTime (Unix
// nanoseconds) as a string, padded:
//
//	{"ts":"1732700000000000000","pad":"xxxx…"}
//
// A JSON body is what pipelines usually carry, and it makes the trigger
// parse it as they would. The time is a string so that it survives the
// trip through float64 numbers exactly.
func payload(size int, sendTime int64) []byte {
	b := make([]byte, 0, size)
	b = append(b, `{"ts":"`...)
	b = appendTime(b, sendTime)
	b = append(b, `","pad":"`...)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// appendTime appends t as 19 digits, so every payload has the same size.
func appendTime(b []byte, t int64) []byte {
	s := strconv.FormatInt(max(t, 0), 10)
	if len(s) < 19 {
		b = append(b, strings.Repeat("0", 19-len(s))...)
	}
	return append(b, s...)
}

// sendTime reads the send time back from the trigger data of a message:
// the parsed body under "json", as the plugin hands it to pipelines.
func sendTime(data map[string]any) (int64, bool) {
	obj, ok := data["json"].(map[string]any)
	if !ok {
		return 0, false
	}
	s, ok := obj["ts"].(string)
	if !ok {
		return 0, false
	}
	t, err := strconv.ParseInt(s, 10, 64)
	return t, err == nil
}
