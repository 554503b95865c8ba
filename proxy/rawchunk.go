package proxy

// chunked follows a chunked body (RFC 9112 §7.1) strictly: CRLF everywhere, hex sizes,
// extensions without control bytes, trailer lines without folding. It returns the bytes
// consumed; the state is stHead again once the trailer section has ended.
func (s *scanner) chunked(b []byte) (int, *rejection) {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch s.state {
		case stChunkSize, stChunkExt, stChunkSizeLF:
			if !s.chunkLine(c) {
				return i, rejChunked
			}
		case stChunkData:
			k := int64(len(b) - i)
			if k > s.remain {
				k = s.remain
			}
			s.remain -= k
			i += int(k) - 1
			if s.remain == 0 {
				s.state = stChunkDataCR
			}
		case stChunkDataCR:
			if c != '\r' {
				return i, rejChunked
			}
			s.state = stChunkDataLF
		case stChunkDataLF:
			if c != '\n' {
				return i, rejChunked
			}
			s.state = stChunkSize
		default:
			end, rej := s.trailer(c)
			if rej != nil {
				return i, rej
			}
			if end {
				s.state = stHead
				return i + 1, nil
			}
		}
	}
	return len(b), nil
}

// chunkLine advances the chunk-size line states (size, extension, LF) by one byte and
// reports whether the byte is acceptable.
func (s *scanner) chunkLine(c byte) bool {
	switch s.state {
	case stChunkSize:
		if v, ok := unhex(c); ok {
			s.digits++
			s.chunkSize = s.chunkSize<<4 | int64(v)
			return s.digits <= maxChunkSizeDigits
		}
		switch {
		case s.digits == 0:
			return false
		case c == ';':
			s.state, s.lineBytes = stChunkExt, 0
		case c == '\r':
			s.state = stChunkSizeLF
		default:
			return false
		}
	case stChunkExt:
		s.lineBytes++
		switch {
		case c == '\r':
			s.state = stChunkSizeLF
		case c < ' ' && c != '\t' || c == 0x7f || s.lineBytes > maxChunkLineBytes:
			return false
		}
	case stChunkSizeLF:
		if c != '\n' {
			return false
		}
		s.digits = 0
		if s.chunkSize == 0 {
			s.state, s.lineBytes = stTrailerStart, 0
		} else {
			s.state, s.remain, s.chunkSize = stChunkData, s.chunkSize, 0
		}
	}
	return true
}

// trailer advances the trailer-section states by one byte and reports whether the
// section (and so the body) has ended. Trailer lines get the header-block rules.
func (s *scanner) trailer(c byte) (end bool, rej *rejection) {
	s.lineBytes++
	if s.lineBytes > s.lim.maxHeaderBytes {
		return false, rejHeaderBytes
	}
	switch s.state {
	case stTrailerStart:
		switch {
		case c == '\r':
			s.state = stTrailerEndLF
		case c == ' ' || c == '\t':
			return false, rejObsFold
		case !isTokenByte(c):
			return false, rejHeaderName
		default:
			s.state = stTrailerName
		}
	case stTrailerName:
		if c == ':' {
			s.state = stTrailerValue
		} else if !isTokenByte(c) {
			return false, rejHeaderName
		}
	case stTrailerValue:
		switch {
		case c == '\r':
			s.state = stTrailerLF
		case c == '\n':
			return false, rejBareLF
		case c < ' ' && c != '\t' || c == 0x7f:
			return false, rejHeaderValue
		}
	case stTrailerLF:
		if c != '\n' {
			return false, rejBareCR
		}
		s.state = stTrailerStart
	case stTrailerEndLF:
		if c != '\n' {
			return false, rejBareCR
		}
		return true, nil
	}
	return false, nil
}
