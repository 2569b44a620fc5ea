"""Who said it, when one microphone hears several people: a speaker encoder from a package
(`encoder`), one session's voices told apart online (`clusterer`), and how well (`scoring`,
`evaluate`)."""
