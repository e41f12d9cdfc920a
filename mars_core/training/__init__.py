"""SFT of the student on the teacher's labels: examples from the one prompt, trl + peft."""
